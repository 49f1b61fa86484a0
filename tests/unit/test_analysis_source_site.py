"""Where an event points in the source, and what in a module ran (hand-built recordings)."""

from __future__ import annotations

from fake_agent import A, B, MS, FakeAgent
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.analysis.source_site import executed, site_of_event, site_of_finding
from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.store.event_store import EventStore

GS = Atom("gen_server")
WORKER = Atom("Elixir.Demo.WorkerB")


def crashing() -> OfflineSession:
    store = EventStore()
    agent = FakeAgent(store, names=[(B, Atom("Elixir.Demo.WorkerB"))])
    agent.event("spawn", A, B, mfa=(WORKER, Atom("init"), 1))
    for n in range(3):
        message = (Atom("update"), n)
        agent.event("receive", B, payload=message)
        agent.event("state", B, payload=(message, 0, 0, Atom("noreply"), GS), aux=(n + 1) * MS)
    agent.event("call", B, mfa=(WORKER, Atom("flush"), 1), payload=[1])
    agent.event("return", B, mfa=(WORKER, Atom("flush"), 1), payload=Atom("ok"))
    frame = (WORKER, Atom("handle_info"), 2, [(Atom("file"), list(b"lib/demo/worker_b.ex")),
                                              (Atom("line"), 11)])
    agent.event("exit", B, payload=(Atom("function_clause"), [frame]))
    agent.flush()
    return OfflineSession(store, {"node": "demo@host"}, None)


def test_a_crash_points_at_its_top_frame_and_line():
    recorded = crashing()
    exit_seq = int(recorded.events.query("kind == 'exit'")["seq"].iloc[0])
    site = site_of_event(recorded.facts, exit_seq)
    assert (site.module, site.key, site.line) == ("Demo.WorkerB", "handle_info/2", 11)
    assert site.what == "crashed in handle_info/2 at line 11"
    finding = recorded.findings().query("kind == 'crash'").iloc[0]
    assert site_of_finding(recorded.facts, finding).line == 11


def test_callbacks_and_calls_point_at_their_functions_and_count_what_ran():
    recorded = crashing()
    state_seq = int(recorded.events.query("kind == 'state'")["seq"].iloc[0])
    assert site_of_event(recorded.facts, state_seq).key == "handle_info/2"       # the process's module
    call_seq = int(recorded.events.query("kind == 'call'")["seq"].iloc[0])
    site = site_of_event(recorded.facts, call_seq)
    assert (site.module, site.key) == ("Demo.WorkerB", "flush/1")
    ran = executed(recorded.facts, "Demo.WorkerB")
    assert ran["handle_info/2"] == (3, 6000.0)                              # 1 + 2 + 3 ms
    assert ran["flush/1"][0] == 1
    assert site_of_event(recorded.facts, 10_000).module is None


def test_the_source_view_takes_a_numpy_seq_from_a_table():
    import numpy as np

    from microscope_jupyter.widgets import SourceView

    recorded = crashing()
    seq = recorded.events.query("kind == 'exit'")["seq"].to_numpy()[0]
    assert isinstance(seq, np.integer)
    view = SourceView(recorded, seq)                  # no node, no checkout: a note says so
    assert view.function == "handle_info/2" and view.line == 11
    assert "could not be read" in view.note
