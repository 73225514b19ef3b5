"""Which code made a report: the package version plus the git commit of the checkout."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path


def _package_version() -> str:
    try:
        return metadata.version("workbench")
    except metadata.PackageNotFoundError:
        # Running from a source tree that was never pip-installed.
        from workbench import __version__

        return __version__


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None  # no git on this machine: the package version alone must do
    return done.stdout.strip() if done.returncode == 0 else None


def _checkout_root() -> Path | None:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / ".git").exists():
            return parent
    return None


def code_version() -> str:
    """The version of the code that is running, for report footers.

    Returns
    -------
    str
        ``"<package version>"``, plus ``"+<git short commit>"`` when the package runs from a git
        checkout, plus ``"-dirty"`` when tracked files differ from that commit (untracked files
        are ignored, as ``git describe --dirty`` does). E.g. ``"0.1.0+c6a7ec7-dirty"``.
    """
    version = _package_version()
    root = _checkout_root()
    if root is None:
        return version
    commit = _git(root, "rev-parse", "--short", "HEAD")
    if not commit:
        # A checkout git refuses to read (no commits yet, other owner): say nothing rather than guess.
        return version
    changes = _git(root, "status", "--porcelain", "--untracked-files=no")
    return f"{version}+{commit}" + ("-dirty" if changes else "")
