"""Entry of the detached daemon process: ``python -m corral.daemon.main``.

This process runs nothing but the daemon, so it keeps out ``rich``, which
structlog imports for its console renderer when installed and the daemon
never uses (about 4 MiB of RSS). A plugin that needs rich in the daemon can
set ``CORRAL_DAEMON_ALLOW_RICH=1``.
"""

import os
import sys

if os.environ.get("CORRAL_DAEMON_ALLOW_RICH") != "1":
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]

from corral.daemon.handover import keep_lock
from corral.daemon.homelock import claim_home

keep_lock()  # after `corral update` re-executed this process: its lock is still held
claim_home()  # one daemon per home: a second one exits here, before its imports

from corral.daemon.kernel import main  # noqa: E402

main()
