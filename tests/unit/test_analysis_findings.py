"""Findings detected from hand-built recordings."""

from __future__ import annotations

from fake_agent import A, B, FakeAgent
from microscope_jupyter.analysis.recorded import SavedSession
from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.store.event_store import EventStore

GS = Atom("gen_server")


def recorded(build) -> SavedSession:
    store = EventStore()
    agent = FakeAgent(store, names=[(B, Atom("Elixir.Demo.WorkerB")), (A, Atom("Elixir.Demo.WorkerA"))])
    build(agent)
    agent.flush()
    return SavedSession(store, {}, None)


def kinds(session) -> dict:
    f = session.findings()
    return dict(zip(f["kind"], f["summary"]))


def test_slow_handler():
    def build(agent):
        agent.event("state", B, payload=(Atom("work"), 0, 1, Atom("noreply"), GS), aux=250_000_000)
        agent.event("state", B, payload=(Atom("quick"), 1, 2, Atom("noreply"), GS), aux=1_000)

    found = kinds(recorded(build))
    assert found == {"slow_handler": "Demo.WorkerB spent 250 ms in handle_info"}


def test_call_timeout():
    reason = (Atom("timeout"), (Atom("gen_server"), Atom("call"), [Atom("Elixir.Demo.WorkerB"), Atom("get")]))

    def build(agent):
        agent.event("exit", A, payload=reason)

    found = kinds(recorded(build))
    assert found["call_timeout"] == "Demo.WorkerA died waiting for a call to Demo.WorkerB that timed out"
    assert "crash" in found


def test_system_monitor_findings_group_per_process():
    def build(agent):
        agent.event("long_gc", B, payload=[(Atom("timeout"), 80)], aux=80)
        agent.event("long_gc", B, payload=[(Atom("timeout"), 120)], aux=120)
        agent.event("long_schedule", A, payload=[(Atom("timeout"), 60)], aux=60)
        agent.event("large_heap", B, payload=[(Atom("heap_size"), 2_000_000)], aux=2_000_000)

    found = kinds(recorded(build))
    assert found["long_gc"] == "Demo.WorkerB spent 120 ms in one garbage collection (2 times)"
    assert found["long_schedule"] == "Demo.WorkerA ran 60 ms without yielding the scheduler"
    assert found["large_heap"] == "Demo.WorkerB reached a heap of 2,000,000 words"


def test_mailbox_growth():
    def build(agent):
        for i in range(60):
            agent.event("receive", B, payload=i)
        for i in range(60):
            agent.event("state", B, payload=(i, i, i + 1, Atom("noreply"), GS))

    found = kinds(recorded(build))
    assert found == {"mailbox_growth": "the mailbox of Demo.WorkerB grew to 60 messages"}


def test_a_busy_but_keeping_up_process_is_not_growth():
    def build(agent):
        for i in range(200):
            agent.event("receive", B, payload=i)
            agent.event("state", B, payload=(i, i, i + 1, Atom("noreply"), GS))

    assert "mailbox_growth" not in kinds(recorded(build))
