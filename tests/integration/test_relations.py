"""Links and monitors on real nodes: held at the start, made and ended during the trace."""

from __future__ import annotations

import time

import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom
from nodes import load_module

MONITOR_MFAS = "[{erlang, monitor, 2}, {erlang, monitor, 3}, {erlang, demonitor, 1}, {erlang, demonitor, 2}]"
FOUND = 2   # a demonitor event's aux when a check found the monitor gone


def row(snapshot, pid):
    return snapshot[snapshot["pid"] == str(pid)].iloc[0]


@pytest.mark.parametrize("runtime", ["otp25", "otp28"])
def test_links_and_monitors_follow_the_recording(node_factory, workload_beam, runtime):
    node = node_factory(runtime, prefix="rel")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_module(s, workload_beam)
        counter = s.rpc("mic_workload", "start_counter", [Atom("mic_counter")])
        w = s.rpc("mic_workload", "watcher", [])

        def watch(*request):
            assert s.rpc("mic_workload", "watch", [w, tuple(request)]) != Atom("timeout")

        watch(Atom("link"), counter)
        watch(Atom("monitor"), counter, Atom("old"))
        rec = s.trace(w, counter)
        assert rec.status()["monitors"] == "tracked"
        watch(Atom("monitor"), counter, Atom("by_pid"))
        watch(Atom("monitor"), Atom("mic_counter"), Atom("by_name"))
        watch(Atom("call"), Atom("mic_counter"), Atom("get"))  # a gen call's own monitor
        # on a process w watched no other way: a monitor made before the trace
        # (untracked: its ref unseen) on the same process would hide the removal
        other = s.rpc("mic_workload", "start_counter", [Atom("mic_other")])
        watch(Atom("monitor"), other, Atom("flushed"))
        watch(Atom("demonitor"), Atom("by_pid"))
        watch(Atom("demonitor_flush"), Atom("flushed"))   # demonitor/2 is not call-traced

        def ends_seen(n):
            # Events stream in while tracing; what is still in the tracer's mailbox
            # at stop counts as dropped, so wait for the ends to land first.
            deadline = time.monotonic() + 10
            while (s.events["kind"] == "demonitor").sum() < n and time.monotonic() < deadline:
                time.sleep(0.05)

        ends_seen(2)    # the demonitor/2 is found by the tracer's check within ~200 ms
        flushed_by = time.time_ns()
        watch(Atom("unlink"), counter)
        s.rpc("erlang", "exit", [counter, Atom("kill")])
        ends_seen(3)
        rec.stop()

        events = s.events
        monitors = events[events["kind"] == "monitor"]
        ends = events[events["kind"] == "demonitor"]
        assert len(monitors) == 3 and (monitors["pid"] == str(w)).all()
        # the name resolved to the pid
        assert list(monitors["peer"]) == [str(counter), str(counter), str(other)]
        assert [t[1] for t in monitors["term"]] == [counter, Atom("mic_counter"), other]
        # by_pid ended by demonitor/1, flushed found gone (demonitor/2), by_name
        # by the 'DOWN' that w received.
        refs = [t[0] for t in monitors["term"]]
        assert list(ends["term"]) == [refs[0], refs[2], refs[1]]
        aux = s.store.raw().aux[ends["seq"].to_numpy()].tolist()
        assert aux == [0, FOUND, 1]
        # found after it happened, and not long after: its time is a bound
        found_at = ends["ts"].iloc[1].value
        assert ends["ts"].iloc[0].value < found_at < flushed_by
        assert not (events["kind"] == "call").any()  # the BIF calls are not events of their own

        tt = s.time_travel()
        start = tt.snapshot_at(0)
        assert row(start, w)["links"] == [str(counter)] and row(start, counter)["links"] == [str(w)]
        assert row(start, w)["monitors"] == [str(counter)]
        assert row(start, counter)["monitored_by"] == [str(w)]
        all_three = tt.snapshot_at(int(monitors["seq"].iloc[2]))
        assert sorted(row(all_three, w)["monitors"]) == sorted([str(counter)] * 3 + [str(other)])
        after_demonitor = tt.snapshot_at(int(ends["seq"].iloc[0]))
        assert sorted(row(after_demonitor, w)["monitors"]) == sorted([str(counter)] * 2 + [str(other)])
        after_found = tt.snapshot_at(int(ends["seq"].iloc[1]))
        assert row(after_found, w)["monitors"] == [str(counter)] * 2
        unlinked = tt.snapshot_at(int(events[events["kind"] == "unlink"]["seq"].iloc[0]))
        assert row(unlinked, w)["links"] == []
        exit_seq = int(events[(events["kind"] == "exit") & (events["pid"] == str(counter))]["seq"].iloc[0])
        dead = tt.snapshot_at(exit_seq)
        assert row(dead, w)["monitors"] == [] and row(dead, w)["alive"]
        if runtime == "otp25":  # patterns are global before OTP 27: ours must be gone
            assert s.eval_erlang(f"[erlang:trace_info(M, traced) || M <- {MONITOR_MFAS}].") == [
                (Atom("traced"), False)] * 4


FOREIGN = {
    # another tool's pattern on one of the four BIFs: ours would overwrite it
    "pattern": ("erlang:trace_pattern({erlang, demonitor, 1}, true, [local]).",
                "erlang:trace_pattern({erlang, demonitor, 1}, false, [local])."),
    # another tool call-tracing a process: our global patterns would reach its trace
    "call_flag": ("T = spawn(fun L() -> receive _ -> L() end end),"
                  "erlang:trace(whereis(code_server), true, [call, {tracer, T}]).",
                  "erlang:trace(whereis(code_server), false, [call])."),
}


@pytest.mark.parametrize("foreign", sorted(FOREIGN))
def test_foreign_call_tracing_leaves_monitors_untracked_not_broken(node_factory, workload_beam,
                                                                   caplog, foreign):
    node = node_factory("otp25", prefix="relf")
    setup, teardown = FOREIGN[foreign]
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_module(s, workload_beam)
        counter = s.rpc("mic_workload", "start_counter", [Atom("mic_counter")])
        w = s.rpc("mic_workload", "watcher", [])
        s.eval_erlang(setup)
        before = s.eval_erlang(f"[erlang:trace_info(M, traced) || M <- {MONITOR_MFAS}].")
        try:
            with caplog.at_level("WARNING"):
                rec = s.trace(w, counter)
            assert rec.status()["monitors"] == "unavailable"
            assert "monitors are not tracked" in caplog.text
            s.rpc("mic_workload", "watch", [w, (Atom("monitor"), counter, Atom("k"))])
            s.rpc("mic_workload", "watch", [w, (Atom("call"), Atom("mic_counter"), Atom("get"))])
            time.sleep(0.2)
            rec.stop()
            kinds = set(s.events["kind"])
            assert "monitor" not in kinds and {"send", "receive", "state"} <= kinds
            # The start still shows what was held; only later monitors are unseen.
            start = s.time_travel().snapshot_at(0)
            assert row(start, w)["monitors"] == []
            # Whatever the other tool set is as it was; we set nothing of our own.
            assert s.eval_erlang(f"[erlang:trace_info(M, traced) || M <- {MONITOR_MFAS}].") == before
        finally:
            s.eval_erlang(teardown)
