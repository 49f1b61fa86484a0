"""The node's own log on real nodes (OTP 25 and 28): logger calls, crash and
supervisor reports recorded as ``log`` events by the default trace, bounded
like messages; the agent's logger handler is gone after a stop, a detach and
a killed controller, and a handler someone else added is never touched."""

from __future__ import annotations

import time

import numpy as np
import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom
from nodes import load_test_module, wait_until

OURS = """[Id || Id <- logger:get_handler_ids(),
                 {ok, #{module := microscope_agent_log}} <- [logger:get_handler_config(Id)]]."""
SUP, WORKER = Atom("mic_logs_sup"), Atom("mic_logs_worker")


def our_handlers(s) -> list:
    return s.eval_erlang(OURS)


def logs_of(s, first_seq: int = 0):
    events = s.events
    return events[(events["kind"] == "log") & (events["seq"] >= first_seq)]


def where(logs, test):
    """The log rows whose entry (the decoded term) passes ``test``."""
    return logs[np.array([isinstance(e, dict) and test(e) for e in logs["term"]], dtype=bool)]


@pytest.fixture
def app(session, tmp_path):
    """mic_logs on the node: a worker that logs and crashes on request, under a
    supervisor that gives up at its second failure."""
    load_test_module(session, "mic_logs", tmp_path)
    stop_supervisor(session)
    session.rpc("mic_logs", "start", [])
    yield session
    stop_supervisor(session)


def stop_supervisor(s) -> None:
    s.eval_erlang("case whereis(mic_logs_sup) of undefined -> ok; P -> "
                  "R = monitor(process, P), exit(P, kill), "
                  "receive {'DOWN', R, _, _, _} -> ok end end.")


def test_a_logged_error_and_a_crash_report_arrive_with_their_process(app):
    s = app
    with s.trace() as rec:
        assert rec.info["logs"] == "on"
        worker = s.rpc("mic_logs", "fail", [Atom("boom")])
        wait_until(lambda: any(isinstance(e, dict) and e.get("context") == "child_terminated"
                               for e in logs_of(s)["term"]))
    logs = logs_of(s)
    mine = logs[logs["pid"] == str(worker)]
    assert "error: ledger: sent 3, table says 2" in list(mine["text"])
    crash = [e for e in mine["term"] if e.get("label") == ("proc_lib", "crash")]
    assert len(crash) == 1 and crash[0]["reason"] == Atom("boom") and crash[0]["level"] == "error"
    assert str(worker) in crash[0]["message"] and "boom" in crash[0]["message"]
    # the supervisor's report is the supervisor's, and names the child as the peer
    sup = str(s.eval_erlang("whereis(mic_logs_sup)."))
    report = where(logs, lambda e: e.get("context") == "child_terminated")
    assert list(report["pid"]) == [sup] and list(report["peer"]) == [str(worker)]
    assert report["term"].iloc[0]["child_id"] == Atom("ledger")
    # the worker was traced: its log lines land before its exit, and the
    # message our handler sent from inside it is no event
    events = s.events
    exit_seq = events[(events["kind"] == "exit") & (events["pid"] == str(worker))]["seq"]
    assert len(exit_seq) == 1 and mine["seq"].max() < exit_seq.iloc[0]
    tracer = str(rec.info["tracer"])
    assert not ((events["kind"] == "send") & (events["peer"] == tracer)).any()
    # queryable and in time travel like any event
    line = int(mine["seq"].iloc[0])
    assert line in set(s.query.events_around(line, window_ms=10)["seq"])
    snapshot = s.time_travel().snapshot_at(line).set_index("pid")
    assert snapshot.loc[str(worker), "log"][-1] == "error: ledger: sent 3, table says 2"


def test_the_handler_is_gone_after_stop_and_after_detach(session, any_node):
    rec = session.trace()
    assert len(our_handlers(session)) == 1
    rec.stop()
    assert our_handlers(session) == []
    with mic.attach(any_node.name, cookie=any_node.cookie) as observer:
        other = mic.attach(any_node.name, cookie=any_node.cookie)
        other.trace()
        assert len(our_handlers(observer)) == 1
        other.detach()
        wait_until(lambda: our_handlers(observer) == [])


def test_a_killed_controllers_handler_goes_at_the_next_log_line(session, any_node):
    rec = session.trace()
    session.rpc("erlang", "exit", [rec.agent, Atom("kill")])
    wait_until(lambda: not rec.running)
    left = our_handlers(session)
    assert len(left) == 1      # its tracer is gone, but nobody logged since
    session.eval_erlang('logger:notice("after the kill"), ok.')
    wait_until(lambda: our_handlers(session) == [])
    # it removed itself: logger did not have to remove a crashed handler
    assert str(left[0]) not in any_node.log()


def test_a_flood_of_log_lines_is_bounded_and_counted_as_dropped(app):
    s = app
    rec = s.trace(max_rate=2000)
    took_ms = s.rpc("mic_logs", "flood", [20000], 60)
    status = rec.stop()
    kept = len(logs_of(s))
    assert 0 < kept < 20000
    assert status["dropped"] > 0 and (s.events["kind"] == "dropped").any()
    kinds = s.events["kind"]
    kept_all = int((~kinds.isin(["dropped", "granularity"])).sum())
    assert kept_all + status["dropped"] == status["seen"]
    # by its rate: about max_rate a second, whatever the flood
    assert kept <= 2000 * (took_ms / 1000 + 2), (kept, took_ms)


def test_someone_elses_handlers_survive(session, any_node):
    # one under an id the agent would take first, one under its own
    for their in ("microscope_log_1", "their_handler"):
        assert session.eval_erlang(f"logger:add_handler({their}, logger_std_h, "
                                   "#{level => none}).") == Atom("ok")
    try:
        rec = session.trace()
        assert rec.info["logs"] == "on"
        assert our_handlers(session) == [Atom("microscope_log_2")]
        session.eval_erlang('logger:warning("still recorded"), ok.')
        wait_until(lambda: "warning: still recorded" in list(logs_of(session)["text"]))
        rec.stop()
        with mic.attach(any_node.name, cookie=any_node.cookie) as observer:
            observer.trace().stop()
            session.detach()
            for their in ("microscope_log_1", "their_handler"):
                config = observer.eval_erlang(f"logger:get_handler_config({their}).")
                assert config[0] == Atom("ok")
                assert config[1][Atom("module")] == Atom("logger_std_h")
                assert config[1][Atom("level")] == Atom("none")
            assert our_handlers(observer) == []
    finally:
        with mic.attach(any_node.name, cookie=any_node.cookie) as cleaner:
            for their in ("microscope_log_1", "their_handler"):
                cleaner.eval_erlang(f"logger:remove_handler({their}).")


def test_a_supervisor_that_gave_up_says_so_and_explain_uses_it(app):
    s = app
    with s.trace():
        s.rpc("mic_logs", "fail", [Atom("boom")])
        wait_until(lambda: s.eval_erlang("is_pid(whereis(mic_logs_worker)).") is True)
        s.rpc("mic_logs", "fail", [Atom("boom")])
        wait_until(lambda: s.eval_erlang("whereis(mic_logs_sup).") == Atom("undefined"))
        time.sleep(0.2)
    logs = logs_of(s)
    gave_up = where(logs, lambda e: e.get("reason") == Atom("reached_max_restart_intensity"))
    assert len(gave_up) == 1 and gave_up["term"].iloc[0]["context"] == "shutdown"
    assert gave_up["text"].iloc[0].startswith("error: Supervisor: {local,mic_logs_sup}")
    causes = s.explain().causes
    intensity = causes[causes["kind"] == "restart_intensity"]
    assert len(intensity) == 1
    assert int(gave_up["seq"].iloc[0]) in set(intensity["evidence"].iloc[0])


def test_a_supervisor_not_traced_is_known_by_its_report(app):
    """Only the worker traced: the supervisor's life is not in the recording,
    its report says it gave up."""
    s = app
    with s.trace("mic_logs_worker"):
        s.rpc("mic_logs", "fail", [Atom("boom")])
        wait_until(lambda: s.eval_erlang("is_pid(whereis(mic_logs_worker)).") is True)
        s.rpc("mic_logs", "fail", [Atom("boom")])
        wait_until(lambda: s.eval_erlang("whereis(mic_logs_sup).") == Atom("undefined"))
        time.sleep(0.2)
    causes = s.explain().causes
    intensity = causes[causes["kind"] == "restart_intensity"]
    assert len(intensity) == 1
    assert intensity["summary"].iloc[0].startswith(
        "mic_logs_sup reached its restart intensity and gave up, as its own supervisor report "
        "says")


def worker_b_logs(s):
    """What the node logged about the Demo.WorkerB that crashed."""
    events = s.events
    crashed = events[(events["kind"] == "exit") & (events["name"] == "Demo.WorkerB")]
    if crashed.empty:
        return crashed
    logs = logs_of(s)
    return logs[logs["pid"] == crashed["pid"].iloc[0]]


def test_elixir_logger_calls_and_a_genserver_crash_arrive(demo):
    with demo.trace():
        demo.rpc("Elixir.Logger", "bare_log", [Atom("warning"), "from elixir"])
        demo.demo.start_updates(12)
        wait_until(lambda: len(worker_b_logs(demo)) > 0)
        demo.demo.stop_updates()
    assert "warning: from elixir" in list(logs_of(demo)["text"])
    about = worker_b_logs(demo)
    assert about["text"].str.startswith("error: ").all()
    assert about["text"].str.contains("checkpoint").any()
