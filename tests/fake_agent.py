"""A fake in-node agent: builds batches exactly as the Erlang tracer lays them out."""

from __future__ import annotations

import numpy as np

from microscope_jupyter.beam.etf import encode
from microscope_jupyter.beam.terms import Atom, Pid
from microscope_jupyter.store.event_store import EventStore
from microscope_jupyter.store.schema import HEADER_DTYPE, KIND_CODES

NODE = "demo@host"
A, B, B2, C = (Pid(Atom(NODE), n, 0, 7) for n in (100, 101, 102, 103))
OFFSET = 1_700_000_000 * 10**9  # time_offset: native monotonic -> epoch ns


class FakeAgent:
    """Builds batches exactly as the Erlang tracer lays them out."""

    def __init__(self, store: EventStore, source="src", names=(), relations=(),
                 native_per_second=10**9, node=NODE):
        self.store = store
        self.source = source
        self.ids: dict = {}
        self.pending_defs: list = []
        store.add_source(source, node, OFFSET, native_per_second, list(names), list(relations))
        self.rows: list = []
        self.payloads = bytearray()
        self.ts = 1000

    def _id(self, term):
        if term is None:
            return 0
        if term not in self.ids:
            self.ids[term] = len(self.ids) + 1
            self.pending_defs.append((self.ids[term], term))
        return self.ids[term]

    def event(self, kind, pid=None, peer=None, mfa=None, payload=None, aux=0, ts=None, flags=0):
        raw = encode(payload) if payload is not None else b""
        self.ts = ts if ts is not None else self.ts + 1000
        self.rows.append((KIND_CODES[kind], flags, 0, self._id(pid), self._id(peer), self._id(mfa),
                          self.ts, len(self.payloads), len(raw), aux))
        self.payloads += raw

    def flush(self, seen=None, dropped=0):
        headers = np.array(self.rows, dtype=HEADER_DTYPE).tobytes()
        n = self.store.append_batch(self.source, headers, bytes(self.payloads), self.pending_defs,
                                    seen, dropped)
        self.rows, self.payloads, self.pending_defs = [], bytearray(), []
        return n


MS = 1_000_000   # ns


def updates(agent: "FakeAgent", start_ms: int, count: int, every_ms: int, work_ms) -> None:
    """A sends B `{:update, n}` every `every_ms`; B handles each in `work_ms(n)` ms."""
    from microscope_jupyter.beam.terms import Atom

    for n in range(count):
        t = (start_ms + n * every_ms) * MS
        message = (Atom("update"), n)
        agent.event("send", A, peer=B, payload=message, ts=t)
        agent.event("receive", B, payload=message, ts=t + 10_000)
        agent.event("state", B, payload=(message, {Atom("n"): n}, {Atom("n"): n + 1},
                                         Atom("noreply"), Atom("gen_server")),
                    aux=work_ms(n) * MS, ts=t + 10_000 + work_ms(n) * MS)


def tally(agent: "FakeAgent") -> None:
    """WorkerA casts {:add, 2} to WorkerB, calls it with :get, then sends it {:add, 5}
    (seqs 0, 3 and 6), each received and handled."""
    from microscope_jupyter.beam.terms import Reference

    add = (Atom("add"), 2)
    cast = (Atom("$gen_cast"), add)
    call = (Atom("$gen_call"), (A, Reference(Atom(NODE), 7, (1, 2, 3))), Atom("get"))
    info = (Atom("add"), 5)
    for message, before, after, reply in ((cast, 0, 2, Atom("noreply")),
                                          (call, 2, 2, (Atom("reply"), 2)),
                                          (info, 2, 7, Atom("noreply"))):
        agent.event("send", A, peer=B, payload=message)
        agent.event("receive", B, payload=message)
        agent.event("state", B, payload=(message, before, after, reply, Atom("gen_server")),
                    aux=1000)


def demo_recording(build):
    """An OfflineSession of what ``build(agent)`` laid down, A and B named as the demo's."""
    from microscope_jupyter.saved import OfflineSession
    from microscope_jupyter.beam.terms import Atom

    store = EventStore()
    agent = FakeAgent(store, names=[(B, Atom("Elixir.Demo.WorkerB")),
                                    (A, Atom("Elixir.Demo.WorkerA"))])
    build(agent)
    agent.flush()
    return OfflineSession(store, {}, None)


def crash_after_updates(agent):
    updates(agent, 0, 30, 10, lambda n: 1 if n % 10 else 25)
    agent.event("send", A, peer=B, payload=(Atom("update"), 30, Atom("checkpoint")), ts=305 * MS)
    agent.event("receive", B, payload=(Atom("update"), 30, Atom("checkpoint")), ts=306 * MS)
    agent.event("exit", B, payload=(Atom("function_clause"), []), ts=307 * MS)


def annotated_recording():
    """The demo's bug in small (updates, then a checkpoint WorkerB has no clause
    for), with three notes: on the crash finding, an event and a range."""
    s = demo_recording(crash_after_updates)
    crash = s.findings().query("kind == 'crash'").iloc[0]
    s.annotate(crash, "WorkerB has no clause for the checkpoint message", author="ana")
    s.annotate(4, "the first update, on time", author="bo")
    s.annotate((20, 60), "callbacks slow down here")
    return s
