"""Running a generated test: ``mix test`` in the user's own Mix app.

Generation (``testgen.exunit``) needs nothing but the recording; running
needs Elixir on this machine and an app to run in, so it lives apart.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import QueryError
from ..package_data import hooks_dir

__all__ = ["ExUnitRun", "run_in_app"]


@dataclass
class ExUnitRun:
    """What ``mix test`` said of a generated test."""

    passed: bool
    summary: str          # "1 test, 0 failures"
    output: str

    def __str__(self) -> str:
        return f"{'passed' if self.passed else 'failed'}: {self.summary}"


def run_in_app(test: Any, app: Path, timeout: float) -> ExUnitRun:
    """Write ``test`` (an ExUnitTest) under ``app/test`` and run it with ``mix test``."""
    mix = shutil.which("mix")
    if mix is None:
        raise QueryError("mix was not found: install Elixir to run the generated test")
    helper = app / "test" / "test_helper.exs"
    if not helper.exists():
        helper.parent.mkdir(parents=True, exist_ok=True)
        helper.write_text("ExUnit.start()\n")
    path = test.write(app / "test" / test.filename)
    env = dict(os.environ, MIX_ENV="test")
    hooks = hooks_dir()   # an app that depends on the hooks package by path finds it
    if hooks is not None:
        env.setdefault("BEAM_MICROSCOPE_HOOKS", str(hooks))
    ran = subprocess.run([mix, "test", str(path.relative_to(app)), "--no-color"], cwd=app,
                         env=env, capture_output=True, text=True, timeout=timeout)
    output = ran.stdout + ran.stderr
    summary = next((line for line in output.splitlines()
                    if re.match(r"^\d+ tests?, \d+ failures?", line)), output.strip()[-200:])
    return ExUnitRun(ran.returncode == 0, summary, output)
