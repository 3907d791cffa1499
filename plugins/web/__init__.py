"""The ``web`` plugin: ``corral web``, a dashboard in the browser.

``corral web start`` runs the dashboard as an app the daemon supervises
(``corral-web`` in ``corral ls``): a starlette app on uvicorn, in its own process
(:mod:`.server`), which reads the daemon through the public client API and the bus
only. It needs the extra ``corral[web]`` (starlette, uvicorn) and the ``bus``
plugin in the daemon. ``corral web url`` prints a login URL with a one-time token
(:mod:`.tokens`); scripts use the API token in ``$CORRAL_HOME/web/api.token``
(:mod:`.auth`). The pages and the API are :mod:`.routes`; what they show live,
:mod:`.hub`; the log pane, :mod:`.logs`.
"""

from __future__ import annotations

from typing import Any

import corral


@corral.hookimpl
def corral_cli(group: Any) -> None:
    from .cli import web_group  # deferred: click loads in the CLI only

    group.add_command(web_group)
