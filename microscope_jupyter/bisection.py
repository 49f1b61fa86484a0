"""The commit that changed the behaviour: ``mic.bisect(repo, good, bad, scenario)``.

    found = mic.bisect("~/src/my_app", good="v1.2.0", bad="main",
                       scenario=lambda s: not s.findings().kind.eq("lost_message").any())
    found.first_bad          # the commit git names
    found.recording          # what the scenario recorded there (an OfflineSession)
    found.verdicts           # commit -> True (good) / False (bad) / None (did not build)

Git's own ``git bisect run`` does the search. At each commit it runs a small
step (``python -m microscope_jupyter.bisection --step``) that asks this process,
over a local authenticated connection, to judge the checkout: compile and
boot the Mix app there as a node (as ``mic.demo()`` boots the demo), attach,
run ``scenario(session)`` (which traces and returns True when the behaviour
is good), save what it recorded, and stop the node. A commit that does not
compile is skipped (exit 125), as ``git bisect run`` expects.

The search runs in a temporary worktree, so the repository's own checkout,
branch and bisect state are left alone.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Callable

from .saved import OfflineSession, load
from .errors import AttachError, BisectError
from .gitmeta import head_commit
from .session import Session, attach
from .demo_app import boot_app_node

__all__ = ["bisect", "BisectResult"]

_GOOD, _BAD, _SKIP, _ABORT = 0, 1, 125, 128   # what git bisect run reads in an exit code
_KEY = "MICROSCOPE_BISECT_KEY"
_ADDRESS = "MICROSCOPE_BISECT_ADDRESS"


@dataclass
class BisectResult:
    first_bad: str | None                     # the full commit id git named
    subject: str | None                       # its first line
    verdicts: dict[str, bool | None] = field(default_factory=dict)
    recordings: dict[str, Path] = field(default_factory=dict)
    log: str = ""                             # `git bisect log`
    error: Exception | None = field(default=None, repr=False)   # the scenario raised

    @property
    def recording(self) -> OfflineSession | None:
        """What the scenario recorded at the first bad commit."""
        path = self.recordings.get(self.first_bad or "")
        return load(path) if path else None

    def _repr_markdown_(self) -> str:
        if not self.first_bad:
            return "git bisect named no first bad commit; see `.log`."
        steps = ", ".join(f"{c[:10]} {'good' if v else 'bad' if v is False else 'skipped'}"
                          for c, v in self.verdicts.items())
        return f"First bad commit: **{self.first_bad[:10]}** {self.subject}\n\nSteps: {steps}"


def bisect(repo: str | Path, good: str, bad: str, scenario: Callable[[Session], bool], *,
           app: str = ".", out: str | Path | None = None, timeout: float = 120.0) -> BisectResult:
    """Find the first commit between ``good`` and ``bad`` where ``scenario``
    returns False. ``app`` is the Mix app's folder inside the repository;
    recordings are saved under ``out`` (a temporary folder by default)."""
    repo = Path(repo).expanduser().resolve()
    if not (repo / ".git").exists():
        raise BisectError(f"{repo} is not a git repository: pass the folder that holds .git")
    out = Path(out) if out else Path(tempfile.mkdtemp(prefix="microscope-bisect-"))
    result = BisectResult(None, None)
    key = secrets.token_bytes(16)
    with tempfile.TemporaryDirectory(prefix="microscope-worktree-") as tmp:
        tree = Path(tmp) / repo.name      # the build cache is per app folder name
        _git(repo, "worktree", "add", "--detach", str(tree), _git(repo, "rev-parse", bad))
        listener = Listener(("127.0.0.1", 0), authkey=key)
        judge = threading.Thread(target=_serve, daemon=True,
                                 args=(listener, tree / app, scenario, out, result, timeout))
        judge.start()
        try:
            _git(tree, "bisect", "start", bad, good)
            env = dict(os.environ, **{_KEY: key.hex(),
                                      _ADDRESS: f"{listener.address[0]}:{listener.address[1]}"})
            ran = subprocess.run(["git", "bisect", "run", sys.executable, "-m",
                                  "microscope_jupyter.bisection", "--step"], cwd=tree, env=env,
                                 capture_output=True, text=True)
            if result.error is not None:
                raise BisectError(f"the scenario raised {type(result.error).__name__}: "
                                      f"{result.error}") from result.error
            result.log = _git(tree, "bisect", "log")
            for line in ran.stdout.splitlines():
                if line.endswith("is the first bad commit"):
                    result.first_bad = line.split()[0]
            if result.first_bad:
                result.subject = _git(tree, "log", "-1", "--format=%s", result.first_bad)
            elif ran.returncode != 0:
                raise BisectError(f"git bisect run failed: {(ran.stderr or ran.stdout)[-500:]}")
        finally:
            listener.close()
            subprocess.run(["git", "bisect", "reset"], cwd=tree, capture_output=True)
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo,
                           capture_output=True)
    return result


def _serve(listener: Listener, app: Path, scenario: Callable, out: Path,
           result: BisectResult, timeout: float) -> None:
    """Judge each checkout git bisect asks about, until the listener closes."""
    while True:
        try:
            conn = listener.accept()
        except OSError:
            return
        with conn:
            commit = conn.recv()
            try:
                verdict = _judge(app, commit, scenario, out, result, timeout)
            except Exception as exc:  # noqa: BLE001 - the scenario's own error, raised later
                result.error = exc
                verdict = _ABORT
            conn.send(verdict)


def _judge(app: Path, commit: str, scenario: Callable, out: Path, result: BisectResult,
           timeout: float) -> int:
    try:
        node = boot_app_node(app, "bisect", timeout)
    except AttachError:
        result.verdicts[commit] = None        # it does not compile here: skip it
        return _SKIP
    try:
        session = attach(node.name, cookie=node.cookie)
        try:
            good = bool(scenario(session))
            if len(session.store):
                # a commit judged again (an out= reused) replaces its recording whole
                result.recordings[commit] = session.save(out / commit[:12], overwrite=True)
        finally:
            session.detach()
    finally:
        node.stop()
    result.verdicts[commit] = good
    return _GOOD if good else _BAD


def _git(cwd: Path, *args: str) -> str:
    ran = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if ran.returncode != 0:
        raise BisectError(f"git {' '.join(args)} failed: {ran.stderr.strip() or ran.stdout.strip()}")
    return ran.stdout.strip()


def _step() -> int:
    """One ``git bisect run`` step: ask the judging process about HEAD."""
    host, port = os.environ[_ADDRESS].rsplit(":", 1)
    commit = head_commit()
    with Client((host, int(port)), authkey=bytes.fromhex(os.environ[_KEY])) as conn:
        conn.send(commit)
        return int(conn.recv())


if __name__ == "__main__" and sys.argv[1:] == ["--step"]:
    sys.exit(_step())
