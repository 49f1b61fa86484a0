"""The agent module: built from ``elixir_hooks/agent/``, shipped as package data,
loaded onto a node and removed from it.

A wheel carries ``microscope_agent.beam``; a source checkout compiles it with
``erlc`` on first use (and again whenever the ``.erl`` is newer). OTP loads
``.beam`` files from older releases, so one compiled on OTP 25 also serves
OTP 26-28 nodes.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

from ..beam.node import RemoteNode
from ..beam.terms import Atom
from ..errors import AgentError, BadRpc, NodeDown

__all__ = ["AGENT_MODULE", "AGENT_VERSION", "agent_beam_path", "agent_beam_bytes", "build_agent_beam",
           "ensure_agent", "unload_agent", "report_swept"]

log = logging.getLogger(__name__)

AGENT_MODULE = "microscope_agent"
AGENT_VERSION = 23  # -define(VERSION, ...) in microscope_agent.erl
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


def ensure_agent(remote: RemoteNode) -> None:
    """Load the agent diskless unless this exact version is already there."""
    try:
        loaded = remote.rpc(AGENT_MODULE, "version", [], 10)
    except BadRpc:
        loaded = None
    if loaded == AGENT_VERSION:
        return
    if loaded is not None:
        # A stale agent from an older microscope: replace it.
        remote.rpc("code", "purge", [Atom(AGENT_MODULE)], 10)
    filename = [ord(c) for c in f"{AGENT_MODULE}.erl"]
    result = remote.rpc("code", "load_binary", [Atom(AGENT_MODULE), filename, agent_beam_bytes()],
                        30)
    if result != (Atom("module"), Atom(AGENT_MODULE)):
        raise AgentError(f"{remote.name} refused to load the agent: {result!r}; is the node "
                         "running with an embedded code server that forbids loading?")


def unload_agent(remote: RemoteNode, modules: Iterable[tuple] = ()) -> None:
    """Remove the agent module; leaves it if another session's agent still runs it,
    or a flight recorder (which outlives sessions by design). First, what a trace
    killed before its cleanup left is swept: its line sink, and (before OTP 27)
    its call patterns on the monitor BIFs and on ``modules``, the ``(m, f, a)``
    specs this session traced."""
    try:
        swept = remote.rpc(AGENT_MODULE, "sweep", [[tuple(m) for m in modules]], 10)
        if isinstance(swept, dict):
            report_swept(remote.name, {str(k): v for k, v in swept.items()}.get("patterns", 0))
        if remote.rpc(AGENT_MODULE, "flight_list", [], 10):
            return
    except (BadRpc, NodeDown, TimeoutError):
        pass
    try:
        remote.rpc("code", "delete", [Atom(AGENT_MODULE)], 5)
        remote.rpc("code", "soft_purge", [Atom(AGENT_MODULE)], 5)
    except (BadRpc, NodeDown, TimeoutError):
        pass


def report_swept(node: str, patterns: int) -> None:
    if patterns:
        log.warning("cleared %d trace patterns on %s left by an earlier trace whose agent was "
                    "killed before it could clean up", patterns, node)
