"""Debian's Chromium for Playwright: Playwright's own browser download cannot work on these machines
(no access beyond the package registries), so the browser tests drive the `chromium` package,
installed here when it is missing and the tests run as root (as CI does)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def _found() -> str | None:
    for path in CANDIDATES:
        if Path(path).exists():
            return path
    return shutil.which("chromium")


def chromium_path() -> tuple[str | None, str]:
    """(the Chromium executable, or None and why it could not be had)."""
    if (path := _found()) is not None:
        return path, ""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "Chromium is not installed and cannot be installed here (needs root and apt-get)"
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        # A fresh machine has no package lists yet.
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return None, f"apt-get install chromium failed: {done.stderr[-500:]}"
    path = _found()
    return path, "" if path else "apt-get installed chromium but no executable was found"


def launch_args() -> list[str]:
    # Chromium's sandbox refuses to run as root; CI runs as root.
    return ["--no-sandbox"] if os.geteuid() == 0 else []
