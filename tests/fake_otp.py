"""OTP's protocols laid down with the fake agent, as the tracer records them:
proc_lib starts and their acks, gen calls and replies, exits with stacktraces.

    scene = Scene(tree=[sup_row(SUP, "pool_sup")])
    scene.start(SUP, P1, "conn_1", at=1)            # spawn, link, register
    scene.ack(P1, SUP, at=2)                        # {ack, P1, {ok, P1}}
    scene.call(C, P1, Atom("get"), tag=1, at=3)      # C's send, P1's receive
    s = scene.session()                             # an OfflineSession

Times are in ms; pids are ``pid(n)`` on the fake node.
"""

from __future__ import annotations

from typing import Any

from fake_agent import MS, NODE, FakeAgent
from microscope_jupyter.beam.terms import Atom, ImproperList, Pid, Reference
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore

GS = Atom("gen_server")
INIT_P5 = (Atom("proc_lib"), Atom("init_p"), 5)
APPLY = (Atom("erlang"), Atom("apply"), 2)


def pid(n: int) -> Pid:
    return Pid(Atom(NODE), n, 0, 7)


def ref(n: int) -> Reference:
    return Reference(Atom(NODE), 7, (n, 2, 3))


def alias(n: int) -> ImproperList:
    return ImproperList((Atom("alias"),), ref(n))


def row(p: Pid, name: str | None, parent: Pid | None, kind: str = "worker") -> dict:
    """A row of the process tree as it was when the trace began."""
    return {"pid": str(p), "name": name, "parent": str(parent) if parent else None,
            "kind": kind, "initial_call": None, "status": "waiting", "message_queue_len": 0,
            "memory": 0, "application": None, "reductions": 0}


def crash(error: Any, module: str, function: str, arity: int) -> tuple:
    """An exception exit reason: {Error, [{M, F, A, Location}]}."""
    return (error, [(Atom(module), Atom(function), arity, [(Atom("line"), 10)])])


class Scene:
    def __init__(self, names=(), tree=()):
        self.store = EventStore()
        self.agent = FakeAgent(self.store, names=[(p, Atom(n)) for p, n in names])
        self.tree = list(tree)

    def at(self, kind: str, who: Pid, ms: float, **kw) -> None:
        self.agent.event(kind, who, ts=int(ms * MS), **kw)

    def start(self, parent: Pid, child: Pid, name: str | None, at: float,
              mfa=INIT_P5) -> None:
        self.at("spawn", parent, at, peer=child, mfa=mfa)
        self.at("link", parent, at + 0.001, peer=child)
        if name:
            self.at("register", child, at + 0.002, peer=Atom(name))

    def ack(self, child: Pid, parent: Pid, at: float, ok: bool = True, reason: Any = None) -> None:
        ret = (Atom("ok"), child) if ok else (Atom("error"), reason)
        self.at("send", child, at, peer=parent, payload=(Atom("ack"), child, ret))

    def exit(self, who: Pid, reason: Any, at: float, name: str | None = None) -> None:
        """Its exit, and the name it lets go of as it dies (as the trace has them)."""
        self.at("exit", who, at, payload=reason)
        if name:
            self.at("unregister", who, at + 0.001, peer=Atom(name))

    def call(self, caller: Pid, callee: Pid, request: Any, tag: int, at: float) -> tuple:
        message = (Atom("$gen_call"), (caller, alias(tag)), request)
        self.at("send", caller, at, peer=callee, payload=message)
        self.at("receive", callee, at + 0.01, payload=message)
        return message

    def reply(self, callee: Pid, caller: Pid, tag: int, value: Any, at: float,
              received: bool = True) -> None:
        message = (alias(tag), value)
        self.at("send", callee, at, peer=caller, payload=message)
        if received:
            self.at("receive", caller, at + 0.01, payload=message)

    def callback(self, who: Pid, message: Any, at: float, took_ms: float,
                 before: Any = 0, after: Any = 0) -> None:
        """A gen_server callback that took ``took_ms`` and returned at ``at``."""
        self.at("state", who, at, payload=(message, before, after, Atom("noreply"), GS),
                aux=int(took_ms * MS))

    def session(self) -> OfflineSession:
        self.agent.flush()
        return OfflineSession(self.store, {"tree": self.tree}, None)
