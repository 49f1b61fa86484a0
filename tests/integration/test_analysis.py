"""Analysis over a real recording of the demo app, live and after save/load."""

from __future__ import annotations

import time

import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom

COUNT, LAST = Atom("count"), Atom("last")


@pytest.fixture
def story(demo):
    with demo.trace():
        demo.demo.start_updates(20)
        time.sleep(0.7)
        demo.demo.stop_updates()
    return demo


def test_queries(story):
    flow = story.query.message_flow("Demo.WorkerA", "Demo.WorkerB")
    assert flow["text"].iloc[0] == "{:update, 1}" and (flow["direction"] == "->").all()
    timeline = story.query.state_timeline("Demo.WorkerB")
    assert timeline["changes"].iloc[0] == ".count: 0 -> 1; .last: nil -> 1"   # one line a cell
    around = story.query.events_around(int(timeline["seq"].iloc[2]), window_ms=5)
    assert int(timeline["seq"].iloc[2]) in set(around["seq"])
    assert len(around) < len(story.events)


def test_trace_message_follows_the_causal_chain(story):
    chain = story.query.trace_message("{:update, 3}")
    assert list(chain["what"][:4]) == ["send", "receive", "handled", "state_change"]
    assert chain["text"].iloc[2] == "handle_info({:update, 3})"
    assert chain["text"].iloc[3] == ".count: 2 -> 3\n.last: 2 -> 3"
    # WorkerB's handler called Demo.Stats: followed one level down.
    caused = chain[chain["depth"] == 1]
    assert "Demo.Stats" in caused["text"].iloc[0]
    crash = story.query.trace_message(lambda t: isinstance(t, tuple) and t[-1:] == (Atom("checkpoint"),))
    assert list(crash["what"]) == ["send", "receive", "crash"]
    assert "function_clause" in crash["text"].iloc[2]
    lost = story.query.trace_message("{:update, 12}")
    assert list(lost["what"]) == ["send", "lost"]


def test_execution_path(demo):
    with demo.trace(modules=["Demo.WorkerB", "Demo.Stats"]):
        demo.demo.start_updates(20)
        time.sleep(0.3)
        demo.demo.stop_updates()
    path = demo.query.execution_path("Demo.WorkerB")
    first = path.iloc[:2]
    assert first["indented"].tolist() == ["Demo.WorkerB.handle_info/2", "  Demo.Stats.received/0"]


def test_time_travel_to_the_moment_updates_go_missing(story):
    tt = story.time_travel()
    events = story.events
    crash = int(events.loc[events["kind"] == "exit", "seq"].iloc[0])
    before = tt.snapshot_at(crash - 1)
    b = before[before["name"] == "Demo.WorkerB"].iloc[0]
    assert b["alive"] and b["state"] == {COUNT: 9, LAST: 9}
    assert (Atom("update"), 10, Atom("checkpoint")) in b["mailbox"]
    # The moment the supervisor's new WorkerB takes the name (not a fixed count
    # of events after the crash: how many fall in between depends on timing).
    restart = int(events.loc[(events["kind"] == "register") & (events["peer"] == "Demo.WorkerB")
                             & (events["seq"] > crash), "seq"].iloc[0])
    after = tt.snapshot_at(restart)
    workers = after[after["name"] == "Demo.WorkerB"]
    assert len(workers) == 1 and workers["pid"].iloc[0] != b["pid"]
    a = after[after["name"] == "Demo.WorkerA"].iloc[0]
    assert str(a["state"][Atom("worker_b")]) == b["pid"]   # still the dead pid: the bug
    changes = tt.diff(crash - 1, restart)
    assert {"died", "appeared"} <= set(changes["change"])


def test_expectations_become_findings(story):
    def counts_every_update(before, message):
        return {**before, COUNT: before[COUNT] + 1, LAST: message[1]}

    assert len(story.expect("Demo.WorkerB", counts_every_update)) == 0
    broken = story.expect("Demo.WorkerB", lambda b, m, a: a[COUNT] <= 3 or "count above 3")
    assert list(broken["reason"].unique()) == ["count above 3"]
    assert broken["diff_text"].iloc[0] == ".count: 3 -> 4\n.last: 3 -> 4"
    wrong = story.expect("Demo.WorkerB", lambda before, message: {**before, COUNT: 0})
    assert wrong["diff_text"].iloc[0] == ".count: 0 -> 1\n.last: nil -> 1"
    findings = story.findings()
    kinds = set(findings["kind"])
    assert {"crash", "restart", "lost_message", "state_violation", "unhandled_message"} <= kinds
    unhandled = findings[findings["kind"] == "unhandled_message"].iloc[0]
    assert "no clause of Demo.WorkerB.handle_info/2 matched the message {:update, 10, :checkpoint}" \
        in unhandled["summary"]
    arrival = story.events.loc[unhandled["evidence"][0]]
    assert arrival["kind"] == "receive" and arrival["name"] == "Demo.WorkerB"
    lost = findings[findings["kind"] == "lost_message"].iloc[0]
    assert "from Demo.WorkerA to Demo.WorkerB" in lost["summary"]
    assert "the sender holds a stale pid" in lost["summary"]   # the planted second bug
    each = story.findings(grouped=False)
    violation = each[each["kind"] == "state_violation"].iloc[0]
    assert violation["name"] == "Demo.WorkerB" and violation["evidence"] == [violation["first_seq"]]
    # grouped (the default): one row per kind and process, with the count and all the evidence
    grouped = findings[findings["kind"] == "state_violation"]
    assert len(grouped) == 1 and grouped["count"].iloc[0] == (each["kind"] == "state_violation").sum()
    assert set(grouped["evidence"].iloc[0]) == {s for ev in each.loc[each["kind"] == "state_violation",
                                                                      "evidence"] for s in ev}


def test_saved_session_answers_offline_and_keeps_no_cookie(story, demo_node, tmp_path):
    path = story.save(tmp_path / "incident")
    live_findings = story.findings()
    story.detach()
    offline = mic.load(path)
    assert offline.metadata["otp_release"] == "25"
    assert offline.metadata["elixir_version"].startswith("1.")
    assert "demo" in offline.metadata["applications"]
    assert offline.metadata["traces"][0]["spec"]["max_events"] == 1_000_000
    assert offline.findings()[["kind", "summary"]].equals(live_findings[["kind", "summary"]])
    assert len(offline.query.trace_message("{:update, 3}")) >= 4
    assert offline.sql("select count(*) as n from events")["n"].iloc[0] == len(offline.events)
    for file in (f for f in path.rglob("*") if f.is_file()):
        assert demo_node.cookie.encode() not in file.read_bytes()


def test_deadlock_and_call_timeouts_are_found(node_factory, tmp_path):
    from nodes import load_test_module

    node = node_factory("otp28", prefix="dead")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_test_module(s, "mic_deadlock", tmp_path)
        s.rpc("mic_deadlock", "start", [])
        with s.trace("mic_left", "mic_right"):
            s.rpc("mic_deadlock", "kick", [])
            time.sleep(1.5)               # both calls time out after 1 s and crash their callers
        findings = s.findings()
        deadlock = findings[findings["kind"] == "deadlock"]
        assert len(deadlock) == 1
        summary = deadlock["summary"].iloc[0]
        assert "mic_left" in summary and "mic_right" in summary
        assert len(deadlock["evidence"].iloc[0]) == 2
        timeouts = findings[findings["kind"] == "call_timeout"]
        assert set(timeouts["name"]) == {"mic_left", "mic_right"}
        cause = s.explain("why did mic_left die?").causes
        cycle = cause[cause["kind"] == "deadlock"]["summary"].iloc[0]
        assert "mic_left called" in cycle and "mic_right called" in cycle
        assert "died of the call timeout" in cycle
