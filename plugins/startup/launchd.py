"""Boot script for launchd (macOS): a LaunchAgent that runs ``corral resurrect``.

``corral startup launchd`` (also ``darwin``, ``macos``) writes
``~/Library/LaunchAgents/<label>.plist`` (label ``corral.<user>``, PM2's
``pm2.<user>``) and runs ``launchctl load -w`` on it. As in PM2 it is a
per-user agent: it runs when the user's launchd domain starts (at login), and
needs no root. ``RunAtLoad`` runs ``corral resurrect`` once; it starts the
daemon in a session of its own and exits, so there is no ``KeepAlive`` (it would
rerun resurrect every ten seconds) and ``AbandonProcessGroup`` leaves the
daemon alone when the job ends. Output goes to ``/tmp/<label>.{out,err}.log``.
``corral unstartup`` runs ``launchctl unload -w`` and deletes the file.
"""

from __future__ import annotations

import plistlib

import corral

from .context import StartupContext, StartupScript


def agent(context: StartupContext, label: str) -> dict:
    return {
        "Label": label,
        "UserName": context.user,
        "ProgramArguments": [context.corral_bin, "resurrect"],
        "EnvironmentVariables": {"PATH": context.path_env, "CORRAL_HOME": str(context.home)},
        "RunAtLoad": True,
        "LaunchOnlyOnce": True,
        "AbandonProcessGroup": True,
        "WorkingDirectory": str(context.user_home),
        "StandardOutPath": f"/tmp/{label}.out.log",
        "StandardErrorPath": f"/tmp/{label}.err.log",
    }


@corral.hookimpl
def corral_startup_script(init_system: str, context: StartupContext) -> StartupScript | None:
    if init_system != "launchd":
        return None
    label = context.service(f"corral.{context.user}").removesuffix(".plist")
    path = context.user_home / "Library/LaunchAgents" / f"{label}.plist"
    header = (
        b"<!-- Written by `corral startup launchd`; "
        b"remove it with `corral unstartup launchd`. -->\n"
    )
    body = plistlib.dumps(agent(context, label), sort_keys=False)
    # the comment goes after the XML declaration, which must come first
    declaration, _, rest = body.partition(b"\n")
    return StartupScript(
        init_system="launchd",
        path=path,
        content=(declaration + b"\n" + header + rest).decode(),
        enable=[["launchctl", "load", "-w", str(path)]],
        disable=[["launchctl", "unload", "-w", str(path)]],
        needs_root=False,
    )
