"""Tracing real nodes end to end: the demo story on OTP 25, a gen_server workload on OTP 25/28."""

from __future__ import annotations

import time

import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom, errors
from microscope_jupyter.beam.terms import Reference
from nodes import load_module, load_test_module, wait_until


def _run_story(s, seconds=0.8):
    rec = s.trace()
    s.demo.start_updates(20)
    time.sleep(seconds)
    s.demo.stop_updates()
    rec.stop()
    return rec


def test_demo_story_events_names_and_kinds(demo):
    rec = _run_story(demo)
    events = demo.events
    assert list(events.columns) == ["seq", "node", "ts", "kind", "pid", "name", "peer", "mfa",
                                    "term", "text"]
    assert events["seq"].is_monotonic_increasing and events["seq"].is_unique
    assert (events["node"] == demo.node).all()
    kinds = set(events["kind"])
    assert {"send", "receive", "state", "exit", "spawn", "register", "send_to_dead"} <= kinds
    # The crash: WorkerB dies on the checkpoint message it has no clause for.
    crash = events[(events["kind"] == "exit") & (events["name"] == "Demo.WorkerB")]
    assert len(crash) == 1
    reason = crash["term"].iloc[0]
    assert reason[0] == Atom("function_clause")
    assert "{:update, 10, :checkpoint}" in crash["text"].iloc[0]
    # The supervisor restarts it under the same name, with a new pid.
    restarts = events[(events["kind"] == "register") & (events["peer"] == "Demo.WorkerB")]
    assert len(restarts) == 1
    assert restarts["pid"].iloc[0] != crash["pid"].iloc[0]
    assert rec.status()["dropped"] == 0


def test_demo_story_messages_pair_and_loss_is_marked(demo):
    _run_story(demo)
    messages = demo.messages()
    updates = messages[messages["text"].str.startswith("{:update,", na=False)]
    delivered = updates[updates["status"] == "delivered"]
    assert [t for t in delivered["text"]][:10] == [f"{{:update, {n}}}" for n in range(1, 10)] + [
        "{:update, 10, :checkpoint}"]
    assert (delivered["receiver_name"] == "Demo.WorkerB").all()
    assert (delivered["sender_name"] == "Demo.WorkerA").all()
    assert (delivered["latency_us"] > 0).all()
    assert (delivered["receive_seq"] > delivered["send_seq"]).all()
    # After the restart WorkerA still holds the old pid: every update is lost.
    lost = updates[updates["status"] == "lost"]
    assert len(lost) >= 5
    assert lost["text"].iloc[0] == "{:update, 11}"
    assert lost["receiver"].nunique() == 1
    assert lost["receiver"].iloc[0] == delivered["receiver"].iloc[0]


def test_demo_story_state_before_and_after(demo):
    _run_story(demo)
    states = demo.states("Demo.WorkerB")
    first = states.iloc[0]
    assert first["callback"] == "handle_info"
    assert first["message"] == (Atom("update"), 1)
    assert first["before"] == {Atom("count"): 0, Atom("last"): None}
    assert first["after"] == {Atom("count"): 1, Atom("last"): 1}
    counts = [after[Atom("count")] for after in states["after"]]
    assert counts == list(range(1, len(counts) + 1))
    assert len(counts) == 9  # the tenth update crashed it
    # A call: WorkerA's start_updates handle_call, with its reply.
    a_states = demo.states("Demo.WorkerA")
    call = a_states[a_states["callback"] == "handle_call"].iloc[0]
    assert call["message"] == (Atom("start"), 20)
    assert call["reply"] == Atom("ok")
    assert call["before"][Atom("interval")] is None and call["after"][Atom("interval")] == 20
    # A callback's duration is the callback itself, in microseconds: each one
    # fits between the end of the previous transition and its own end.
    ts = a_states["ts"].astype("int64").to_numpy() / 1000
    assert (a_states["duration_us"] > 0).all()
    assert (a_states["duration_us"].to_numpy()[1:] <= ts[1:] - ts[:-1]).all()


def test_call_tracing_pairs_calls_with_returns_and_exceptions(demo):
    rec = demo.trace(modules=["Demo.WorkerB.handle_info/2", "Demo.Stats"])
    demo.demo.start_updates(20)
    time.sleep(0.6)
    rec.stop()
    calls = demo.calls()
    handle = calls[calls["mfa"] == "Demo.WorkerB.handle_info/2"]
    returned = handle[handle["status"] == "returned"]
    assert len(returned) == 9
    assert returned["args"].iloc[0][0] == (Atom("update"), 1)
    assert returned["result"].iloc[0][0] == Atom("noreply")
    raised = handle[handle["status"] == "raised"]
    assert len(raised) == 1
    assert raised["exception"].iloc[0] == (Atom("error"), Atom("function_clause"))
    # Rendered as every other table is, in Elixir.
    assert returned["args_text"].iloc[0] == "({:update, 1}, %{count: 0, last: nil})"
    assert returned["result_text"].iloc[0] == "{:noreply, %{count: 1, last: 1}}"
    assert raised["exception_text"].iloc[0] == "{:error, :function_clause}"
    assert raised["result_text"].isna().all() and returned["exception_text"].isna().all()
    # call to return, in microseconds (a unit slip would be off by 1000x)
    span = (handle["ended_at"] - handle["started_at"]).dt.total_seconds() * 1e6
    assert ((handle["duration_us"] - span).abs() < 1).all() and (handle["duration_us"] > 0).all()
    stats = calls[calls["mfa"].str.startswith("Demo.Stats.", na=False)]
    assert {"Demo.Stats.sent/0", "Demo.Stats.received/0"} <= set(stats["mfa"])


def test_trace_narrowed_to_a_process(demo):
    rec = demo.trace("Demo.WorkerB")
    demo.demo.start_updates(20)
    time.sleep(0.3)
    rec.stop()
    pids = set(demo.events["pid"].dropna())
    worker_b = demo.rpc("erlang", "whereis", [Atom("Elixir.Demo.WorkerB")])
    worker_a = demo.rpc("erlang", "whereis", [Atom("Elixir.Demo.WorkerA")])
    assert str(worker_a) not in pids
    assert rec.info["traced"] == 1


def test_supervisor_subtree(demo):
    rec = demo.trace("Demo.Supervisor", messages=False)
    assert rec.info["traced"] == 4  # the supervisor and its three children
    rec.stop()


def test_events_stream_while_running(demo):
    rec = demo.trace()
    demo.demo.start_updates(10)
    seen = []
    for _ in range(6):
        time.sleep(0.15)
        seen.append(len(demo.events))
    rec.stop()
    assert seen[0] > 0
    assert seen[-1] > seen[0], f"events did not grow while tracing: {seen}"


def test_max_events_trips_with_a_clear_message(demo):
    rec = demo.trace(max_events=40)
    demo.demo.start_updates(5)
    status = rec.wait(timeout=10)
    assert status["state"] == "max_events"
    assert "stopped after 40 events (max_events)" in status["message"]
    events = demo.events
    assert len(events[events["kind"] != "dropped"]) == 40
    # Everything seen after the limit is counted, not lost silently.
    assert status["seen"] == 40 + status["dropped"]


@pytest.mark.parametrize("modules, fragment", [
    (["lists"], "refusing to trace all of :lists"),
    ([":io"], "refusing to trace all of :io"),
    (["microscope_agent"], "refusing to trace the microscope agent itself"),
    (["Demo.NoSuchModule"], "module Demo.NoSuchModule is not loaded"),
    (["Demo.WorkerB.nope/7"], "Demo.WorkerB.nope/7 does not exist"),
])
def test_dangerous_or_impossible_specs_are_refused(demo, modules, fragment):
    with pytest.raises(errors.TraceSpecError, match=fragment.replace(".", r"\.")):
        demo.trace(modules=modules)
    assert demo.recordings == []


def test_unknown_process_and_bad_limits(demo):
    with pytest.raises(errors.TraceSpecError, match="no process Demo.Nobody") as refused:
        demo.trace("Demo.Nobody")
    assert "did you mean" not in str(refused.value)
    # a near miss of a registered name: the node's own name is offered
    with pytest.raises(errors.TraceSpecError,
                       match=r"no process Demo\.WorkerBB on .*; did you mean Demo\.WorkerB\?"):
        demo.trace("Demo.WorkerBB")
    with pytest.raises(errors.TraceLimitError, match="max_events=0 cannot work"):
        demo.trace(max_events=0)
    with pytest.raises(errors.TraceLimitError, match="cannot read duration"):
        demo.trace(duration="soon")


def test_one_trace_at_a_time_per_session(demo):
    rec = demo.trace()
    with pytest.raises(errors.TraceError, match="a trace is already running in this session"):
        demo.trace()
    rec.stop()
    demo.trace().stop()   # fine once the first has stopped


def test_duration_limit(demo):
    rec = demo.trace(duration="300ms")
    status = rec.wait(timeout=10)
    assert status["state"] == "duration"


@pytest.mark.parametrize("runtime", ["otp25", "otp28"])
def test_gen_server_state_for_cast_call_and_info(node_factory, workload_beam, runtime):
    node = node_factory(runtime, prefix="wl")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_module(s, workload_beam)
        counter = s.rpc("mic_workload", "start_counter", [Atom("mic_counter")])
        rec = s.trace("mic_counter")
        assert rec.info["backend"] == ("session" if runtime == "otp28" else "legacy")
        s.rpc("gen_server", "cast", [Atom("mic_counter"), (Atom("add"), 2)])
        s.rpc("erlang", "send", [counter, (Atom("add"), 3)])
        assert s.rpc("gen_server", "call", [Atom("mic_counter"), (Atom("add"), 4)]) == Atom("ok")
        # the hook reports a call's transition just after its reply goes out
        wait_until(lambda: len(s.states("mic_counter")) == 3)
        rec.stop()
        states = s.states("mic_counter")
        assert list(states["callback"]) == ["handle_cast", "handle_info", "handle_call"]
        assert [b[Atom("count")] for b in states["before"]] == [0, 2, 5]
        assert [a[Atom("count")] for a in states["after"]] == [2, 5, 9]
        assert list(states["reply"]) == [None, None, Atom("ok")]
        received = s.events[s.events["kind"] == "receive"]
        assert len(received) == 3
        assert (received["name"] == "mic_counter").all()


@pytest.mark.parametrize("runtime", ["otp25", "otp28"])
def test_a_hooked_process_that_runs_no_callback_still_has_its_state(node_factory, workload_beam,
                                                                   runtime):
    """The hook event carries the state the process had when its hook went in,
    as sys:get_state gives it to a second node: an idle server's state is
    known though it ran no callback in the recording."""
    from microscope_jupyter.analysis.lifecycle import state_of

    node = node_factory(runtime, prefix="base")
    with mic.attach(node.name, cookie=node.cookie) as s, \
            mic.attach(node.name, cookie=node.cookie) as observer:
        load_module(s, workload_beam)
        s.rpc("mic_workload", "start_counter", [Atom("mic_counter")])
        s.rpc("gen_server", "cast", [Atom("mic_counter"), (Atom("add"), 7)])
        truth = observer.rpc("sys", "get_state", [Atom("mic_counter")])
        assert truth[Atom("count")] == 7
        rec = s.trace("mic_counter")
        frame = s.facts.store.frame
        wait_until(lambda: ((frame()["kind"] == "hook") & (frame()["_aux"] == 2)).any())
        rec.stop()
        assert s.states("mic_counter").empty
        events = frame()
        based = events[(events["kind"] == "hook") & (events["_aux"] == 2)]
        assert list(based["name"]) == ["mic_counter"] and based["term"].iloc[0] == truth
        assert state_of(s.facts, "mic_counter", "after", -1) == truth
        # time travel shows it, from the first moment to the last
        for at in (0, len(events) - 1):
            row = s.time_travel().snapshot_at(at).set_index("name").loc["mic_counter"]
            assert row["state"] == truth, at


def test_gen_statem_state_names(node_factory, tmp_path):
    node = node_factory("otp28", prefix="fsm")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_test_module(s, "mic_switch", tmp_path)
        s.rpc("mic_switch", "start", [])
        rec = s.trace("mic_switch")
        assert rec.info["hooked"] == 1
        assert [s.rpc("mic_switch", "flip", []) for _ in range(3)] == [Atom("on"), Atom("off"), Atom("on")]
        wait_until(lambda: len(s.states("mic_switch")) == 3)
        rec.stop()
        states = s.states("mic_switch")
        assert list(states["before"]) == [Atom("off"), Atom("on"), Atom("off")]
        assert list(states["after"]) == [Atom("on"), Atom("off"), Atom("on")]
        assert list(states["callback"]) == ["off/3", "on/3", "off/3"]   # the callback called
        assert [d for d in states["data_after"]] == [1, 2, 3]


def test_children_are_followed_and_lifecycle_can_be_left_out(node_factory, workload_beam):
    node = node_factory("otp28", prefix="kids")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_module(s, workload_beam)
        driver = s.rpc("mic_workload", "driver", [50])
        rec = s.trace(driver, lifecycle=False)
        box = s._local.mailbox()
        s._remote.send(box, driver, (Atom("go"), box.pid))
        box.receive(timeout=10)
        rec.stop()   # what the trace saw before the stop is drained, whatever is in flight
        events = s.events
        # ping and pong are spawned by the driver: traced through set_on_spawn.
        assert events["pid"].nunique() >= 3
        assert len(events[events["kind"] == "send"]) >= 100
        assert not set(events["kind"]) & {"spawn", "exit", "link", "register"}


def test_rate_limit_drops_are_counted_not_lost(node_factory, workload_beam):
    node = node_factory("otp28", prefix="flood")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_module(s, workload_beam)
        counter = s.rpc("mic_workload", "start_counter", [Atom("mic_sink")])
        rec = s.trace("mic_sink", max_rate=1000, state=False)
        s.rpc("mic_workload", "flood", [counter, 20_000])
        time.sleep(1.5)  # let the next rate window open, so the drop span is written
        s.rpc("mic_workload", "flood", [counter, 10])
        status = rec.stop()
        events = s.events
        dropped_rows = events[events["kind"] == "dropped"]
        kept = len(events) - len(dropped_rows)
        assert status["dropped"] > 10_000
        assert dropped_rows["term"].sum() == status["dropped"]
        assert kept + status["dropped"] == status["seen"]
        assert "dropped under load" in status["message"]


def test_system_monitor_events_and_the_previous_monitor_is_restored(node_factory, workload_beam):
    node = node_factory("otp28", prefix="mon")
    with mic.attach(node.name, cookie=node.cookie) as s:
        foreign = s.eval_erlang("""
            P = spawn(fun Loop() -> receive _ -> Loop() end end),
            erlang:system_monitor(P, [{long_gc, 500}]),
            P.""")
        # auto: the monitor is someone else's, so it is left alone.
        rec = s.trace(state=False)
        assert rec.info["system_monitor"] is False
        rec.stop()
        rec = s.trace(state=False, system_monitor={"large_heap_words": 200_000})
        assert rec.info["system_monitor"] is True
        s.eval_erlang("spawn(fun() -> L = lists:seq(1, 400000), receive after 300 -> length(L) end end), ok.")
        time.sleep(0.6)
        rec.stop()
        heaps = s.events[s.events["kind"] == "large_heap"]
        assert len(heaps) >= 1
        info = dict(heaps["term"].iloc[0])
        words = sum(info.get(Atom(k), 0) for k in ("heap_size", "old_heap_size", "mbuf_size"))
        assert words > 150_000   # near the 200k threshold (stack and block slack not counted)
        findings = s.findings()
        assert "large_heap" in set(findings["kind"])
        assert s.rpc("erlang", "system_monitor", []) == (foreign, [(Atom("long_gc"), 500)])


def test_replies_to_aliases_pair_without_interning_each_alias(node_factory, workload_beam):
    node = node_factory("otp25", prefix="alias")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_module(s, workload_beam)
        counter = s.rpc("mic_workload", "start_counter", [Atom("mic_counter")])
        caller = s.rpc("mic_workload", "watcher", [])
        rec = s.trace(caller, counter, state=False)
        for _ in range(20):
            s.rpc("mic_workload", "watch", [caller, (Atom("call"), Atom("mic_counter"), Atom("get"))])

        def replies():
            table = s.messages()
            return table[(table["sender"] == str(counter)) & (table["receiver"] == str(caller))]
        wait_until(lambda: len(replies()) >= 20)
        rec.stop()
        replies = replies()
        assert len(replies) == 20 and (replies["status"] == "delivered").all()
        assert all(text.startswith("{[:alias | #Reference<") for text in replies["text"])
        # One id per process and name, not one per call.
        assert not any(isinstance(term, Reference) for term in s.store._ids.terms())
