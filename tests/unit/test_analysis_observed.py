"""The time a recording watched: rates never run across the gap between traces."""

from __future__ import annotations

from fake_agent import A, B, FakeAgent
from microscope_jupyter.analysis.observed import observed_seconds
from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.store.event_store import EventStore

S = 10**9


def two_traces(per_trace: int = 10) -> EventStore:
    """Two one-second traces of one session, 10 s apart, each with its messages."""
    store = EventStore()
    for source, start in (("first", 0), ("second", 11 * S)):
        agent = FakeAgent(store, source=source)
        for n in range(per_trace):
            t = start + n * S // (per_trace - 1)
            agent.event("send", A, peer=B, payload=(Atom("tick"), n), ts=t)
            agent.event("receive", B, payload=(Atom("tick"), n), ts=t + 1000)
        agent.flush()
    return store


def test_two_traces_watched_two_seconds_not_twelve():
    store = two_traces()
    assert abs(observed_seconds(store) - 2.0) < 0.01
    # a window over the gap and half the second trace (wall-clock ns, as the spans)
    base = store.recording_spans()[0][0]
    assert abs(observed_seconds(store, (base + 2 * S, base + 11 * S + S // 2)) - 0.5) < 0.01

