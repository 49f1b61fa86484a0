"""The agent's modules: built from ``elixir_hooks/agent/``, shipped as package data,
loaded onto a node together and removed from it together.

The agent is one Erlang module per concept (``microscope_agent`` is the facade
every call from Python goes to; see its module doc). A wheel carries their
``.beam`` files; a source checkout compiles them with ``erlc`` on first use (and
again whenever a source is newer than a beam). OTP loads ``.beam`` files from
older releases, so ones compiled on OTP 25 also serve OTP 26-28 nodes.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterable

from ..beam.node import RemoteNode
from ..beam.terms import Atom
from ..errors import AgentError, BadRpc, NodeDown

__all__ = ["AGENT_MODULE", "AGENT_VERSION", "agent_modules", "agent_beam_paths", "agent_beams",
           "build_agent_beams", "ensure_agent", "unload_agent", "report_swept"]

log = logging.getLogger(__name__)

AGENT_MODULE = "microscope_agent"   # the facade: every rpc from Python goes to it
AGENT_VERSION = 32  # -define(VERSION, ...) in microscope_agent.hrl, which every module includes
PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_DIR = PACKAGE_DIR.parent.parent / "elixir_hooks" / "agent"
SOURCE_PATH = SOURCE_DIR / f"{AGENT_MODULE}.hrl"   # where VERSION is defined


def agent_sources() -> list[Path]:
    """Every source of the agent in a checkout (none in an installed wheel)."""
    return sorted([*SOURCE_DIR.glob("*.erl"), *SOURCE_DIR.glob("*.hrl")])


def agent_modules() -> list[str]:
    """Every module of the agent, the facade last: one per ``.erl`` in
    ``elixir_hooks/agent/`` in a checkout, else one per ``.beam`` the wheel ships."""
    found = (p.stem for p in (SOURCE_DIR.glob("*.erl") if SOURCE_DIR.is_dir()
                              else PACKAGE_DIR.glob("*.beam")))
    return sorted(found, key=lambda name: (name == AGENT_MODULE, name))


def build_agent_beams(out_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Compile every module of the agent with one ``erlc`` run."""
    erlc = shutil.which("erlc")
    if erlc is None:
        raise AgentError("erlc is needed to build the in-node agent from source: "
                         "apt-get install erlang-nox, or install a wheel that ships it")
    sources = sorted(SOURCE_DIR.glob("*.erl"))
    result = subprocess.run([erlc, "-o", str(out_dir), *map(str, sources)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise AgentError(f"the in-node agent does not compile: {result.stdout}{result.stderr}")
    return [out_dir / f"{src.stem}.beam" for src in sources]


def agent_beam_paths() -> list[Path]:
    """The ``.beam`` of every module, facade last; rebuilt first when a source is newer."""
    beams = [PACKAGE_DIR / f"{name}.beam" for name in agent_modules()]
    sources = agent_sources()
    if sources:
        newest = max(src.stat().st_mtime for src in sources)
        if not all(b.exists() and b.stat().st_mtime >= newest for b in beams):
            build_agent_beams()
    missing = [b.name for b in beams if not b.exists()]
    if missing or not beams:
        raise AgentError(f"the in-node agent ({', '.join(missing) or f'{AGENT_MODULE}.beam'}) is "
                         "missing from the package; reinstall microscope-jupyter")
    return beams


def agent_beams() -> list[tuple[str, bytes]]:
    """(module, object code) for every module of the agent, the facade last."""
    return [(path.stem, path.read_bytes()) for path in agent_beam_paths()]


def ensure_agent(remote: RemoteNode) -> None:
    """Load every module of the agent diskless unless this exact version is there.

    The facade's ``version/0`` answers only when every module is loaded at its
    version; anything else (an older agent, a module missing or at another
    version) has them all loaded again. The facade goes last, so that it
    answers only once the rest is in. An agent whose last session's kernel
    died unloads itself (its controller, once alone); one that decided so just
    as this load began may delete some of it again, so the load is checked,
    and done once more if it has to be."""
    for _ in range(3):
        loaded = _version(remote)
        if loaded == AGENT_VERSION:
            return
        _load(remote, stale=loaded is not None)
    if _version(remote) != AGENT_VERSION:
        raise AgentError(f"the agent did not stay loaded on {remote.name}: something on the node "
                         "deletes its modules as they load; try again")


def _load(remote: RemoteNode, stale: bool) -> None:
    for module, beam in agent_beams():
        if stale:
            # A stale agent from an older microscope: replace it.
            remote.rpc("code", "purge", [Atom(module)], 10)
        else:
            # old code an unload could not purge then, unused now: loading over
            # it would leave two versions, and the next unload could delete neither
            remote.rpc("code", "soft_purge", [Atom(module)], 10)
        result = remote.rpc("code", "load_binary", [Atom(module), [ord(c) for c in f"{module}.erl"],
                                                    beam], 30)
        if result != (Atom("module"), Atom(module)):
            raise AgentError(f"{remote.name} refused to load the agent's {module}: {result!r}; is "
                             "the node running with an embedded code server that forbids loading?")


def _version(remote: RemoteNode) -> Any:
    try:
        return remote.rpc(AGENT_MODULE, "version", [], 10)
    except BadRpc:
        return None


def unload_agent(remote: RemoteNode, modules: Iterable[tuple] = ()) -> None:
    """Remove every module of the agent; leaves them while a flight recorder
    (which outlives sessions by design, and unloads the agent at its expiry) or
    another session's trace runs them (that session unloads them at its detach).
    First, what a trace killed before its cleanup left is swept: its line sink,
    and (before OTP 27) its call patterns on the monitor BIFs and on ``modules``,
    the ``(m, f, a)`` specs this session traced. The facade goes first, so that
    ``version/0`` stops answering before any other module goes."""
    try:
        swept = remote.rpc(AGENT_MODULE, "sweep", [[tuple(m) for m in modules]], 10)
        if isinstance(swept, dict):
            report_swept(remote.name, {str(k): v for k, v in swept.items()}.get("patterns", 0))
        if remote.rpc(AGENT_MODULE, "flight_list", [], 10):
            return
        if remote.rpc(AGENT_MODULE, "in_use", [], 10) is True:
            return
    except (BadRpc, NodeDown, TimeoutError):
        pass
    unloading = list(reversed(agent_modules()))
    try:
        # Old code nobody runs any more (left by an unload whose purge a
        # process then still needed) goes first: while it is there, delete
        # refuses, and the agent would stay loaded for good.
        for module in unloading:
            remote.rpc("code", "soft_purge", [Atom(module)], 5)
        for module in unloading:
            remote.rpc("code", "delete", [Atom(module)], 5)
        for module in unloading:
            remote.rpc("code", "soft_purge", [Atom(module)], 5)
    except (BadRpc, NodeDown, TimeoutError):
        pass


def report_swept(node: str, patterns: int) -> None:
    if patterns:
        log.warning("cleared %d trace patterns on %s left by an earlier trace whose agent was "
                    "killed before it could clean up", patterns, node)
