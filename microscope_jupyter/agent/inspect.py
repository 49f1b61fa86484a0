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

__all__ = ["process_details", "module_source", "module_versions", "node_facts"]

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


# For each loaded module: md5, application, its vsn, source path.
_VERSIONS = """
[begin
     Info = M:module_info(),
     App = case application:get_application(M) of {ok, A} -> A; undefined -> undefined end,
     Vsn = case App =/= undefined andalso application:get_key(App, vsn) of
               {ok, V} -> V;
               _ -> undefined
           end,
     Source = proplists:get_value(source, proplists:get_value(compile, Info, []), undefined),
     {M, proplists:get_value(md5, Info), App, Vsn, Source}
 end || M <- Mods, erlang:module_loaded(M)].
"""


def module_versions(remote: RemoteNode, modules: list[str]) -> list[dict[str, Any]]:
    """For each of ``modules`` loaded on the node: ``module`` (the atom), ``md5``
    (hex), ``application``, its ``vsn`` and the ``source`` path it was built from."""
    if not modules:
        return []
    found = remote.eval_erlang(_VERSIONS, {"Mods": [Atom(m) for m in modules]}, 30)
    return [{"module": m, "md5": md5.hex() if isinstance(md5, bytes) else None,
             "application": None if app == Atom("undefined") else str(app),
             "vsn": _charlist(vsn), "source": _charlist(source)}
            for m, md5, app, vsn, source in found]


def _charlist(value: Any) -> str | None:
    """A charlist or binary as text; None for an atom such as undefined."""
    if isinstance(value, list):
        return "".join(chr(c) for c in value)
    return _text(value) if isinstance(value, (str, bytes)) and not isinstance(value, Atom) else None

def node_facts(remote: RemoteNode) -> dict[str, Any]:
    """OTP release, ERTS and Elixir versions, schedulers, process count, uptime."""
    otp, erts, schedulers, count, uptime_ms, apps, elixir_on_path = remote.eval_erlang(
        _NODE_INFO_SRC, {}, 30)
    versions = {str(app): _chars(vsn) for app, vsn in apps}
    elixir = versions.get("elixir")
    if elixir is None and elixir_on_path != Atom("undefined"):
        elixir = _chars(elixir_on_path)
    return {"otp_release": _chars(otp), "erts_version": _chars(erts), "elixir_version": elixir,
            "schedulers": schedulers, "process_count": count, "uptime_s": uptime_ms / 1000.0,
            "applications": versions}


_NODE_INFO_SRC = """
{erlang:system_info(otp_release), erlang:system_info(version),
 erlang:system_info(schedulers_online), erlang:system_info(process_count),
 element(1, erlang:statistics(wall_clock)),
 [{A, V} || {A, _, V} <- application:loaded_applications()],
 %% Elixir registers with EPMD before its own application is loaded, so a
 %% fresh node may not list it yet: read the version from its .app file
 %% (no side effect on the node) when it is on the code path.
 case code:where_is_file("elixir.app") of
     non_existing -> undefined;
     AppFile ->
         case file:consult(AppFile) of
             {ok, [{application, elixir, Keys}]} -> proplists:get_value(vsn, Keys, undefined);
             _ -> undefined
         end
 end}.
"""


def _chars(value: Any) -> str:
    """Erlang strings arrive as lists of code points."""
    if isinstance(value, list):
        return "".join(chr(c) for c in value)
    return str(value)
