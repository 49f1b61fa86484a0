"""rpc the way erl_interface does it: REG_SEND to ``rex`` with
``{Self, {call, M, F, A, user}}``, reply ``{rex, Result}``.

    call(remote, "erlang", "system_info", [Atom("otp_release")])   # [50, 53]
    eval_erlang(remote, "X + 1.", {"X": 41})                       # 42

Each call gets a fresh mailbox, so a reply that arrives after its timeout
lands nowhere. Errors come out as one line: BadRpc names what was undefined
or what it raised, RpcTimeout says what to do.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol

from ..errors import BadRpc, RpcTimeout
from .terms import Atom, format_erlang


class Peer(Protocol):
    """What an rpc needs of a connected node (``node.RemoteNode`` is one): its
    name, our local node to open a mailbox on, and a way to send to a
    registered name. Named here so this module never imports the node's."""

    name: str
    local: Any

    def send(self, box: Any, to: str, message: Any) -> None: ...

__all__ = ["call", "eval_erlang"]

A_REX, A_BADRPC, A_CALL, A_USER = Atom("rex"), Atom("badrpc"), Atom("call"), Atom("user")
A_EXIT = Atom("EXIT")


def call(remote: Peer, module: str, function: str, args: Iterable[Any] = (),
         timeout: float | None = 30.0) -> Any:
    """``rpc:call/5`` through ``rex``; BadRpc if it raised, RpcTimeout if no reply."""
    args = list(args)
    with remote.local.mailbox() as box:
        box.watch(remote)
        request = (box.pid, (A_CALL, Atom(module), Atom(function), args, A_USER))
        remote.send(box, "rex", request)
        try:
            reply = box.receive(timeout, match=_is_rex_reply)
        except TimeoutError:
            raise RpcTimeout(f"{module}:{function}/{len(args)} on {remote.name} did not answer "
                             f"within {timeout:g} s; the node may be overloaded, or raise "
                             "the timeout") from None
    result = reply[1]
    if isinstance(result, tuple) and len(result) == 2 and result[0] == A_BADRPC:
        raise BadRpc(_badrpc_message(remote.name, module, function, len(args), result[1]),
                     reason=result[1])
    return result


def eval_erlang(remote: Peer, source: str, bindings: dict[str, Any] | None = None,
                timeout: float | None = 30.0, parsed: dict | None = None) -> Any:
    """Evaluate Erlang expressions (``"X + 1."``) on the node with stdlib's erl_eval.

    The parse happens on the node once per distinct source and is kept in
    ``parsed`` (the caller's cache), so a repeated query costs one round trip.
    """
    cache = {} if parsed is None else parsed
    exprs = cache.get(source)
    if exprs is None:
        chars = [ord(c) for c in source]
        scanned = call(remote, "erl_scan", "string", [chars], timeout)
        if not (isinstance(scanned, tuple) and scanned[0] == Atom("ok")):
            raise BadRpc(f"Erlang source does not scan: {format_erlang(scanned)}", scanned)
        result = call(remote, "erl_parse", "parse_exprs", [scanned[1]], timeout)
        if not (isinstance(result, tuple) and result[0] == Atom("ok")):
            raise BadRpc(f"Erlang source does not parse: {format_erlang(result)}; "
                         "end the expressions with a period", result)
        exprs = cache[source] = result[1]
    binding_list = sorted((Atom(k), v) for k, v in (bindings or {}).items())
    value = call(remote, "erl_eval", "exprs", [exprs, binding_list], timeout)
    return value[1]


def _is_rex_reply(message: Any) -> bool:
    return isinstance(message, tuple) and len(message) == 2 and message[0] == A_REX


def _badrpc_message(node: str, module: str, function: str, arity: int, reason: Any) -> str:
    call = f"{module}:{function}/{arity}"
    if (isinstance(reason, tuple) and len(reason) == 2 and reason[0] == A_EXIT
            and isinstance(reason[1], tuple) and reason[1] and reason[1][0] == Atom("undef")):
        missing = call
        stack = reason[1][1] if len(reason[1]) > 1 else None
        if isinstance(stack, list) and stack and isinstance(stack[0], tuple) and len(stack[0]) >= 3:
            m, f, a = stack[0][:3]
            missing = f"{m}:{f}/{len(a) if isinstance(a, list) else a}"
        where = "" if missing == call else f" (called from {call})"
        return (f"{missing} is not defined on {node}{where} (undef); check the module is "
                "loaded and the function exported with that arity")
    if reason == Atom("nodedown"):
        return f"{node} went down during {call}; attach again once the node is back"
    return f"{call} raised on {node}: {format_erlang(reason, 600)}"
