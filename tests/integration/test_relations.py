"""Links and monitors on real nodes: held at the start, made and ended during the trace."""

from __future__ import annotations

import time

import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom
from nodes import load_module

MONITOR_MFAS = "[{erlang, monitor, 2}, {erlang, monitor, 3}, {erlang, demonitor, 1}, {erlang, demonitor, 2}]"


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
        watch(Atom("demonitor"), Atom("by_pid"))
        watch(Atom("unlink"), counter)
        s.rpc("erlang", "exit", [counter, Atom("kill")])
        # Events stream in while tracing; what is still in the tracer's mailbox at
        # stop counts as dropped, so wait for the 'DOWN' to land first.
        deadline = time.monotonic() + 10
        while (s.events["kind"] == "demonitor").sum() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        rec.stop()

        events = s.events
        monitors = events[events["kind"] == "monitor"]
        ends = events[events["kind"] == "demonitor"]
        assert len(monitors) == 2 and (monitors["pid"] == str(w)).all()
        assert (monitors["peer"] == str(counter)).all()  # the name resolved to the pid
        assert [t[1] for t in monitors["term"]] == [counter, Atom("mic_counter")]
        # by_pid ended by demonitor, by_name by the 'DOWN' that w received.
        assert list(ends["term"]) == [monitors["term"].iloc[0][0], monitors["term"].iloc[1][0]]
        assert not (events["kind"] == "call").any()  # the BIF calls are not events of their own

        tt = s.time_travel()
        start = tt.snapshot_at(0)
        assert row(start, w)["links"] == [str(counter)] and row(start, counter)["links"] == [str(w)]
        assert row(start, w)["monitors"] == [str(counter)]
        assert row(start, counter)["monitored_by"] == [str(w)]
        both = tt.snapshot_at(int(monitors["seq"].iloc[1]))
        assert row(both, w)["monitors"] == [str(counter)] * 3
        after_demonitor = tt.snapshot_at(int(ends["seq"].iloc[0]))
        assert row(after_demonitor, w)["monitors"] == [str(counter)] * 2
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
