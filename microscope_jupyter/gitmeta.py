"""Git metadata, asked in one place: the commit of a checkout.

Recordings note the commit of the notebook's checkout (``head_commit``) and
of each module's source (``checkout_commit``), so a comparison can tell
changed code from changed behaviour. No git, or no checkout: None.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["head_commit", "checkout_commit"]


def head_commit(folder: str | Path | None = None) -> str | None:
    """The commit checked out in ``folder`` (default: the working directory)."""
    return _git(["rev-parse", "HEAD"], folder)


def checkout_commit(source: str | None) -> str | None:
    """The git commit of the checkout a source file is in (``+dirty`` when the
    file has uncommitted changes); None when it is in none on this machine."""
    if not source or not Path(source).exists():
        return None
    folder = Path(source).parent
    commit = head_commit(folder)
    if commit is None:
        return None
    dirty = _git(["status", "--porcelain", "--", source], folder)
    return commit + "+dirty" if dirty else commit


def _git(args: list[str], folder: str | Path | None) -> str | None:
    """git's stdout, stripped; None when git is missing, fails or says nothing."""
    where = ["-C", str(folder)] if folder is not None else []
    try:
        ran = subprocess.run(["git", *where, *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return ran.stdout.strip() or None if ran.returncode == 0 else None
