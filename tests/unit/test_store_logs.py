"""Log events (the node's own log, forwarded by the agent's logger handler) as
``s.events``, time travel and the query show them."""

from __future__ import annotations

from fake_agent import A, B, FakeAgent
from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore
from microscope_jupyter.store.logs import is_restart_intensity_report, log_entry, log_text
from microscope_jupyter.store.schema import AUX, FLAG_TRUNCATED, KIND_CODES, KINDS, LOG_LEVELS

WORKER = (Atom("Elixir.Demo.WorkerB"), Atom("handle_info"), 2)
ERROR, WARNING = LOG_LEVELS.index("error"), LOG_LEVELS.index("warning")


def log_payload(level: str, text: str, **summary):
    return (Atom(level), text.encode(), {Atom(k): v for k, v in summary.items()})


def _recording(*lines, truncated=False):
    """B logs each of ``lines`` ((level, text, summary)), after a receive."""
    store = EventStore()
    agent = FakeAgent(store, names=[(B, Atom("Elixir.Demo.WorkerB"))])
    agent.event("receive", B, payload=(Atom("update"), 1))
    for level, text, summary in lines:
        agent.event("log", B, mfa=WORKER, payload=log_payload(level, text, **summary),
                    aux=LOG_LEVELS.index(level))
    if truncated:
        agent.event("log", B, payload=(Atom("$microscope_truncated"), 9000), aux=ERROR,
                    flags=FLAG_TRUNCATED)
    agent.event("send", A, peer=B, payload=(Atom("update"), 2))
    agent.flush()
    return OfflineSession(store, {}, None)


def test_the_kind_and_what_its_aux_holds():
    assert KINDS[29] == "log" and KIND_CODES["log"] == 29
    assert AUX["log"] == "level"
    assert LOG_LEVELS == ["emergency", "alert", "critical", "error", "warning", "notice", "info",
                          "debug"]


def test_a_log_line_reads_as_its_level_and_message():
    s = _recording(("error", "sent 3, table says 2", {"domain": [Atom("elixir")]}),
                   ("warning", "slow: 400 ms", {}))
    logs = s.events[s.events["kind"] == "log"]
    assert list(logs["text"]) == ["error: sent 3, table says 2", "warning: slow: 400 ms"]
    first = logs["term"].iloc[0]
    assert first == {"level": "error", "message": "sent 3, table says 2", "domain": ["elixir"]}
    assert set(logs["pid"]) == {str(B)} and set(logs["name"]) == {"Demo.WorkerB"}
    assert set(logs["mfa"]) == {"Demo.WorkerB.handle_info/2"}


def test_a_report_keeps_what_analysis_reads_beside_its_text():
    entry = log_entry(log_payload(
        "error", "Supervisor: {local,pool_sup}. Context: shutdown. Reason: "
        "reached_max_restart_intensity.", label=(Atom("supervisor"), Atom("shutdown")),
        context=Atom("shutdown"), reason=Atom("reached_max_restart_intensity"),
        child_id=Atom("conn"), file=list(b"supervisor.erl"), line=800))
    assert entry["label"] == ("supervisor", "shutdown") and entry["context"] == "shutdown"
    assert entry["file"] == "supervisor.erl" and entry["child_id"] == Atom("conn")
    assert is_restart_intensity_report(entry)
    assert not is_restart_intensity_report({**entry, "context": "child_terminated"})
    assert log_text(entry, "elixir", 20) == "error: Supervisor: {"


def test_a_line_cut_to_a_summary_still_reads():
    s = _recording(truncated=True)
    logs = s.events[s.events["kind"] == "log"]
    assert list(logs["text"]) == ["#Truncated<9000 bytes>"]


def test_time_travel_shows_a_processs_newest_log_lines():
    s = _recording(*[("info", f"step {n}", {}) for n in range(5)])
    tt = s.time_travel()
    at_start = tt.snapshot_at(0).set_index("pid").loc[str(B), "log"]
    assert at_start == []
    second = tt.snapshot_at(2).set_index("pid").loc[str(B), "log"]
    assert second == ["info: step 0", "info: step 1"]
    last = tt.snapshot_at(len(s.events) - 1).set_index("pid").loc[str(B), "log"]
    assert last == ["info: step 2", "info: step 3", "info: step 4"]   # the newest three


def test_events_around_include_log_lines():
    s = _recording(("notice", "hello", {}))
    around = s.query.events_around(0, window_ms=50)
    assert "log" in set(around["kind"])
