"""Line events (``BeamMicroscope.inspect_line``) as ``s.lines()`` shows them."""

from __future__ import annotations

from fake_agent import B, FakeAgent
from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore
from microscope_jupyter.store.joins import LINE_COLUMNS
from microscope_jupyter.store.lines import line_snapshot, line_text

WORKER = (Atom("Elixir.Demo.WorkerB"), Atom("handle_info"), 2)


def _recording(*bindings):
    """B calls inspect_line("after total", binding) once per binding, at line 11."""
    store = EventStore()
    agent = FakeAgent(store, names=[(B, Atom("Elixir.Demo.WorkerB"))])
    agent.event("receive", B, payload=(Atom("update"), 1))
    for binding in bindings:
        agent.event("line", B, mfa=WORKER, payload=(b"after total", b"lib/demo/worker_b.ex",
                                                    binding), aux=11)
    agent.flush()
    return OfflineSession(store, {}, None)


def test_a_label_with_no_line_rows_keeps_the_columns():
    """Nothing recorded is when people look: the frame is empty, not column-less."""
    for s in (_recording(), _recording([(Atom("n"), 3)])):
        lines = s.lines(label="never called")
        assert list(lines.columns) == LINE_COLUMNS and len(lines) == 0
        assert list(lines["binding"]) == []
    lines = _recording([(Atom("n"), 3)]).lines(label="after total")
    assert list(lines["binding"]) == [{"n": 3}]


def test_a_value_that_is_not_a_keyword_list_is_recorded_under_value():
    """inspect_line(label, %{a: 1}) or (label, 42): the value itself, not an empty binding."""
    s = _recording({Atom("a"): 1}, 42, [], [(Atom("n"), 3), 5])
    assert list(s.lines()["binding"]) == [{"value": {Atom("a"): 1}}, {"value": 42}, {},
                                          {"value": [(Atom("n"), 3), 5]}]
    assert s.lines()["text"].iloc[1] == "after total: value = 42"
    snapshot = line_snapshot((b"x", b"f.ex", 42))
    assert snapshot["binding"] == {"value": 42}
    assert line_text(snapshot, "elixir", 80) == "x: value = 42"
