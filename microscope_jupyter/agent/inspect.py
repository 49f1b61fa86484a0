"""One live process, as a person inspecting it wants it (the agent's
``process_details/2``): state, links, monitors and counters, never a wait
longer than the timeout on a busy process."""

from __future__ import annotations

from typing import Any

from ..beam.node import RemoteNode
from ..beam.terms import Atom
from ..errors import QueryError
from ..render.names import erlang_module_name
from .beam_file import AGENT_MODULE

__all__ = ["process_details", "module_source"]

_WHY = {"not_alive": "is not alive", "not_a_pid": "is not a pid on this node",
        "not_registered": "is not a registered name on the node"}


def process_details(remote: RemoteNode, proc: Any, timeout_ms: int = 1000) -> dict[str, Any]:
    """``state`` (the term, or None with ``state_error`` saying why: ``timeout``
    for a process too busy to answer, ``not_a_sys_process``), ``links``,
    ``monitors``, ``monitored_by``, ``current_function``, ``status``,
    ``message_queue_len``, ``memory``, ``reductions``, ``trap_exit``."""
    text = str(proc)
    key = text if text.startswith("<") else erlang_module_name(text)
    reply = remote.rpc(AGENT_MODULE, "process_details", [key.encode(), timeout_ms],
                       timeout_ms / 1000 + 10)
    if isinstance(reply, tuple) and reply[0] == Atom("error"):
        raise QueryError(f"{text} {_WHY.get(str(reply[1]), str(reply[1]))}")
    details = {str(k): v for k, v in reply[1].items()}
    state = details.pop("state")
    ok = isinstance(state, tuple) and state[0] == Atom("ok")
    details["state"] = state[1] if ok else None
    details["state_error"] = None if ok else str(state[1])
    return details


def module_source(remote: RemoteNode, module: str) -> dict[str, Any]:
    """``source`` (the path the module was compiled from), ``text`` (that file,
    when the node can read it), ``functions`` ({"name/arity": first line}, from
    the debug info) or ``functions_error`` when a release stripped it."""
    reply = remote.rpc(AGENT_MODULE, "module_source", [Atom(erlang_module_name(module))], 20)
    if isinstance(reply, tuple) and reply[0] == Atom("error"):
        raise QueryError(f"the node has no module {module} ({reply[1]})")
    found = {str(k): v for k, v in reply[1].items()}
    text = found["text"]
    functions = found["functions"]
    lines, error = {}, None
    if isinstance(functions, tuple):
        error = ("the module has no debug info (a release built without it, or stripped): "
                 "no function lines")
    else:
        lines = {f"{name}/{arity}": int(line) for name, arity, line in functions}
    return {"source": None if found["source"] == Atom("undefined") else _text(found["source"]),
            "text": None if text == Atom("undefined") else _text(text),
            "functions": lines, "functions_error": error}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
