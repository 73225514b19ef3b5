"""Helpers the flow tests share: a project copy under git, as a plant's checkout is."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` as a test user; its output."""
    done = subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@plant.example", *args],
                          cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def copy_project(project: Path, home: Path, *, pipelines: dict[str, str] | None = None,
                 notebooks: tuple[Path, ...] = (), keep_pipelines: bool = True) -> Path:
    """A copy of the flow tests' project at ``home`` (no reports), with extra ``pipelines`` (name →
    YAML) and ``notebooks``, committed to a new git repository as a plant's checkout is."""
    shutil.copytree(project, home, ignore=shutil.ignore_patterns("reports", "__pycache__"))
    for notebook in notebooks:
        shutil.copy(notebook, home / "notebooks" / notebook.name)
    if not keep_pipelines:
        for old in (home / "pipelines").glob("*.yaml"):
            old.unlink()
    for name, text in (pipelines or {}).items():
        (home / "pipelines" / f"{name}.yaml").write_text(text)
    (home / ".gitignore").write_text("data/\nreports/\n")
    git(home, "init", "-q")
    git(home, "add", "-A")
    git(home, "commit", "-q", "-m", "project")
    return home
