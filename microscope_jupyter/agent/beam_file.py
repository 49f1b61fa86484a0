"""The compiled agent module, built from ``elixir_hooks/agent/`` and shipped as package data.

A wheel carries ``microscope_agent.beam``; a source checkout compiles it with
``erlc`` on first use (and again whenever the ``.erl`` is newer). OTP loads
``.beam`` files from older releases, so one compiled on OTP 25 also serves
OTP 26-28 nodes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import AgentError

__all__ = ["AGENT_MODULE", "agent_beam_path", "agent_beam_bytes", "build_agent_beam"]

AGENT_MODULE = "microscope_agent"
PACKAGE_DIR = Path(__file__).resolve().parent
BEAM_PATH = PACKAGE_DIR / f"{AGENT_MODULE}.beam"
SOURCE_PATH = PACKAGE_DIR.parent.parent / "elixir_hooks" / "agent" / f"{AGENT_MODULE}.erl"


def build_agent_beam(source: Path = SOURCE_PATH, out_dir: Path = PACKAGE_DIR) -> Path:
    erlc = shutil.which("erlc")
    if erlc is None:
        raise AgentError("erlc is needed to build the in-node agent from source: "
                         "apt-get install erlang-nox, or install a wheel that ships it")
    result = subprocess.run([erlc, "-o", str(out_dir), str(source)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise AgentError(f"the in-node agent does not compile: {result.stdout}{result.stderr}")
    return out_dir / f"{AGENT_MODULE}.beam"


def agent_beam_path() -> Path:
    stale = (SOURCE_PATH.exists()
             and (not BEAM_PATH.exists() or SOURCE_PATH.stat().st_mtime > BEAM_PATH.stat().st_mtime))
    if stale:
        return build_agent_beam()
    if not BEAM_PATH.exists():
        raise AgentError(f"the in-node agent {BEAM_PATH.name} is missing from the package; "
                         "reinstall microscope-jupyter")
    return BEAM_PATH


def agent_beam_bytes() -> bytes:
    return agent_beam_path().read_bytes()
