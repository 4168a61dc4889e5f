"""Whether this user's systemd units start at boot: ``loginctl``'s linger.

A user manager starts at boot and outlives the last logout only for a user who
lingers; without it every ``fleet-*`` user unit waits for a login and ends at logout.
"""

from __future__ import annotations

import os
import shutil
import subprocess

LOGINCTL_TIMEOUT = 30.0


def _user() -> str:
    import pwd

    return os.environ.get("USER") or pwd.getpwuid(os.getuid()).pw_name


def linger_state(user: str | None = None) -> tuple[bool | None, str]:
    """Whether ``user`` lingers (``loginctl show-user -p Linger``); None and why when unknown."""
    loginctl = shutil.which("loginctl")
    if loginctl is None:
        return None, "loginctl is not installed"
    try:
        proc = subprocess.run(
            [loginctl, "show-user", user or _user(), "-p", "Linger", "--value"],
            capture_output=True,
            text=True,
            timeout=LOGINCTL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, "loginctl did not answer"
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or ["loginctl show-user failed"])[0]
    return proc.stdout.strip() == "yes", ""


def linger_hint(linger: bool | None = None, why: str = "") -> str:
    """What lingering means for these units, for the state ``linger_state`` found."""
    user = _user()
    if linger:
        return f"linger is on for {user}: these units start at boot and outlive your logout"
    enable = f"`loginctl enable-linger {user}` (as root: sudo)"
    if linger is False:
        return (
            f"linger is off for {user}: these units start only when {user} logs in and stop"
            f" at logout; run {enable} so they start at boot"
        )
    return (
        f"linger of {user} unknown ({why}): user units start at boot only with linger; run {enable}"
    )
