"""The agent cleans up after itself, whatever happens to us, and leaves others' tracing alone.

Every check of what is left on the target runs from a separate hidden node
(a second Session), never through the connection under test.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom
from microscope_jupyter.agent.beam_file import agent_modules
from nodes import CLEAN, RUNTIMES, leftovers, load_module, load_test_module, wait_clean, wait_until

def busy_trace(s):
    rec = s.trace(modules=["Demo.WorkerB", "Demo.Stats"])
    s.demo.start_updates(10)
    time.sleep(0.3)
    return rec


def test_detach_removes_everything(demo, demo_node):
    rec = busy_trace(demo)
    with mic.attach(demo_node.name, cookie=demo_node.cookie) as observer:
        during = leftovers(observer)
        assert during["flags"] and during["agents"] and during["hooks"] and during["patterns"]
        assert (Atom("erlang"), Atom("demonitor"), 1) in during["patterns"]  # monitors tracked
        assert during["monitor"]   # the node's system monitor was free, so the agent took it
        demo.detach()
        assert wait_clean(observer) == CLEAN
        # Unloaded too.
        assert observer.rpc("code", "is_loaded", [Atom("microscope_agent")]) is False
    assert rec.status()["state"] == "stopped"


def test_dropped_connection_cleans_up(demo, demo_node):
    rec = busy_trace(demo)
    with mic.attach(demo_node.name, cookie=demo_node.cookie) as observer:
        assert leftovers(observer)["agents"]
        # The node drops our connection, as a network partition would.
        assert observer.rpc("erlang", "disconnect_node", [Atom(demo._local.name)]) is True
        assert wait_clean(observer) == CLEAN
    deadline = time.monotonic() + 5
    while rec.state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rec.state == "disconnected"
    assert "connection to the node dropped" in rec.status()["message"]
    assert len(demo.events) > 0  # what was recorded is kept


def test_killed_kernel_cleans_up(demo_node, tmp_path):
    script = tmp_path / "kernel.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        import microscope_jupyter as mic
        from microscope_jupyter.demo_app import DemoControls
        s = mic.attach({demo_node.name!r}, cookie={demo_node.cookie!r})
        s.demo = DemoControls(s)
        rec = s.trace(modules=["Demo.WorkerB", "Demo.Stats"])
        s.demo.start_updates(10)
        print("tracing", flush=True)
        time.sleep(120)
    """))
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[2])
    try:
        assert child.stdout.readline().strip() == "tracing"
        with mic.attach(demo_node.name, cookie=demo_node.cookie) as observer:
            assert leftovers(observer)["agents"]
            os.kill(child.pid, signal.SIGKILL)  # kill -9: no detach, no goodbye
            child.wait(timeout=10)
            assert wait_clean(observer) == CLEAN
            # and the agent module itself: no notebook is left to unload it, so it
            # unloads itself once alone (as the README promises)
            wait_until(lambda: observer.rpc("code", "is_loaded", [Atom("microscope_agent")])
                       is False, timeout=15)
    finally:
        if child.poll() is None:
            child.kill()


def test_two_kernels_killed_together_still_unload_the_agent(demo_node, tmp_path):
    """Each dead kernel's controller waits to be alone before unloading the module;
    two of them must not wait on each other."""
    script = tmp_path / "kernel.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        import microscope_jupyter as mic
        s = mic.attach({demo_node.name!r}, cookie={demo_node.cookie!r})
        rec = s.trace(sys.argv[1])
        print("tracing", flush=True)
        time.sleep(120)
    """))
    children = [subprocess.Popen([sys.executable, str(script), proc], stdout=subprocess.PIPE,
                                 text=True, cwd=Path(__file__).resolve().parents[2])
                for proc in ("Demo.WorkerA", "Demo.WorkerB")]
    try:
        assert [c.stdout.readline().strip() for c in children] == ["tracing", "tracing"]
        with mic.attach(demo_node.name, cookie=demo_node.cookie) as observer:
            assert len(leftovers(observer)["agents"]) >= 2
            for child in children:
                os.kill(child.pid, signal.SIGKILL)
            for child in children:
                child.wait(timeout=10)
            assert wait_clean(observer) == CLEAN
            wait_until(lambda: observer.rpc("code", "is_loaded", [Atom("microscope_agent")])
                       is False, timeout=15)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()


def test_dbg_session_survives_attach_and_detach(demo, demo_node):
    with mic.attach(demo_node.name, cookie=demo_node.cookie) as other:
        # Someone else is already tracing Demo.Stats with dbg.
        other.eval_erlang("""
            {ok, _} = dbg:tracer(process, {fun(_, N) -> N + 1 end, 0}),
            {ok, _} = dbg:p(whereis('Elixir.Demo.Stats'), [m]),
            {ok, _} = dbg:tpl('Elixir.Demo.Stats', get, 0, []),
            ok.""")
        try:
            before = other.eval_erlang(
                "S = whereis('Elixir.Demo.Stats'),"
                "{erlang:trace_info(S, tracer), erlang:trace_info(S, flags),"
                " erlang:trace_info({'Elixir.Demo.Stats', get, 0}, traced)}.")
            # On OTP 25 patterns are global: microscope refuses rather than overwrite.
            with pytest.raises(mic.errors.TraceSpecError, match="already has a trace pattern"):
                demo.trace(modules=["Demo.Stats.get/0"])
            rec = demo.trace()
            assert rec.info["skipped_foreign"] >= 1
            demo.demo.start_updates(10)
            time.sleep(0.3)
            rec.stop()
            stats_pid = str(demo.rpc("erlang", "whereis", [Atom("Elixir.Demo.Stats")]))
            assert stats_pid not in set(demo.events["pid"].dropna())
            demo.detach()
            after = other.eval_erlang(
                "S = whereis('Elixir.Demo.Stats'),"
                "{erlang:trace_info(S, tracer), erlang:trace_info(S, flags),"
                " erlang:trace_info({'Elixir.Demo.Stats', get, 0}, traced)}.")
            assert after == before
            assert before[0][1] != [] and before[2] == (Atom("traced"), Atom("local"))
        finally:
            other.eval_erlang("dbg:stop(), ok.")


def test_otp28_sessions_leave_a_foreign_tracer_alone(node_factory, workload_beam):
    node = node_factory("otp28", prefix="iso")
    with mic.attach(node.name, cookie=node.cookie) as observer:
        load_module(observer, workload_beam)
        observer.rpc("mic_workload", "start_counter", [Atom("mic_counter")])
        # A foreign tracer on the counter, through the classic API.
        foreign = observer.eval_erlang("""
            T = spawn(fun Loop() -> receive _ -> Loop() end end),
            1 = erlang:trace(whereis(mic_counter), true, [send, 'receive', {tracer, T}]),
            T.""")
        with mic.attach(node.name, cookie=node.cookie) as s:
            rec = s.trace("mic_counter", modules=["mic_workload"])
            assert rec.info["backend"] == "session"
            s.rpc("gen_server", "call", [Atom("mic_counter"), (Atom("add"), 1)])
            time.sleep(0.2)
            rec.stop()
            assert len(s.states("mic_counter")) == 1
            assert len(s.calls()) >= 1
        counter = observer.rpc("erlang", "whereis", [Atom("mic_counter")])
        assert observer.rpc("erlang", "trace_info", [counter, Atom("tracer")]) == (Atom("tracer"), foreign)
        flags = observer.rpc("erlang", "trace_info", [counter, Atom("flags")])[1]
        assert set(flags) == {Atom("send"), Atom("receive")}
        left = wait_clean(observer, [Atom("mic_workload")], ignore_flags_of=(counter,))
        assert left == CLEAN


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_stalled_notebook_costs_the_node_a_bounded_backlog(node_factory, workload_beam, tmp_path,
                                                            runtime):
    """The kernel stops reading (SIGSTOP, as a long GIL-holding cell would): the
    distribution backs up, yet the tracer is never suspended, sheds what it
    cannot send, counts it, and loses nothing silently. On OTP 25 and 28."""
    node = node_factory(runtime, prefix="stall")
    script = tmp_path / "kernel.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        import microscope_jupyter as mic
        from microscope_jupyter import Atom
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from nodes import CLEAN, RUNTIMES, leftovers, load_module, load_test_module, wait_clean, wait_until
        from pathlib import Path
        s = mic.attach({node.name!r}, cookie={node.cookie!r})
        load_module(s, Path({str(workload_beam)!r}))
        driver = s.rpc("mic_workload", "driver", [10_000_000])
        rec = s.trace(driver, state=False, max_events=100_000_000)
        box = s._local.mailbox()
        s._remote.send(box, driver, (Atom("go"), box.pid))
        print(rec.info["tracer"], flush=True)
        sys.stdin.readline()
        status = rec.stop(timeout=120)
        s.rpc("erlang", "exit", [driver, Atom("kill")])
        events = s.events
        rows = events[events["kind"] == "dropped"]
        steps = events[events["kind"] == "granularity"]   # bookkeeping rows, like the drop counts
        print(json.dumps({{"seen": status["seen"], "dropped": status["dropped"],
                          "kept": len(events) - len(rows) - len(steps),
                          "row_sum": int(rows["term"].sum())}}),
              flush=True)
        s.detach()
    """))
    child = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[2])
    try:
        tracer = child.stdout.readline().strip()
        assert tracer.startswith("<"), tracer
        with mic.attach(node.name, cookie=node.cookie) as observer:
            time.sleep(0.5)
            os.kill(child.pid, signal.SIGSTOP)
            queues = []
            try:
                for _ in range(16):
                    time.sleep(0.25)
                    queues.append(observer.eval_erlang(
                        f'element(2, erlang:process_info(list_to_pid("{tracer}"), message_queue_len)).'))
            finally:
                os.kill(child.pid, signal.SIGCONT)
            # Shedding starts at 50k queued and halves the queue each time; a suspended
            # tracer would pile up to max_queue (500k). On a loaded 2-core host the flood
            # can outrun one halving (125k seen once in a full run), so the bound is half
            # of max_queue: far from the pile-up, and still shedding's doing.
            assert max(queues) < 250_000, queues
        child.stdin.write("stop\n")
        child.stdin.flush()
        result = json.loads(child.stdout.readline())
        assert result["dropped"] > 0
        assert result["kept"] + result["dropped"] == result["seen"]
        assert result["row_sum"] == result["dropped"]
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()


# -- a controller killed outright (exit(Pid, kill), a purge of the agent) runs no
# cleanup; what it leaves must still go, and only what is ours.

LOAD = [Atom("mic_load")]
SWEPT = "killed before it could clean up"


def busy_worker(node, tmp_path):
    """A session on ``node`` with mic_load's worker w1 handling a cast every 5 ms."""
    s = mic.attach(node.name, cookie=node.cookie)
    load_test_module(s, "mic_load", tmp_path)
    s.rpc("mic_load", "start_worker", [Atom("w1")])
    s.rpc("mic_load", "feed", [Atom("w1"), 5, 1, Atom("infinity")])
    return s


def kill_trace(s, rec, observer):
    """Kill the trace's controller; returns what it left once its processes are gone.
    The recording learns of it from the controller's DOWN and keeps its events."""
    s.rpc("erlang", "exit", [rec.agent, Atom("kill")])
    wait_until(lambda: not leftovers(observer, LOAD)["agents"] and not rec.running)
    assert rec.state == "agent_died" and "exit reason: killed" in rec.status()["message"]
    return leftovers(observer, LOAD)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_killed_controller_leaves_nothing_after_detach(node_factory, tmp_path, runtime, caplog):
    """Before OTP 27 a killed controller's call patterns outlive it (node-wide);
    the detach sweeps them, with one warning. Flags, the hook, the system
    monitor go by themselves; OTP 28's session takes everything with it."""
    node = node_factory(runtime, prefix="killed")
    s = busy_worker(node, tmp_path)
    rec = s.trace("w1", modules=["mic_load"])
    with mic.attach(node.name, cookie=node.cookie) as observer:
        wait_until(lambda: leftovers(observer, LOAD)["hooks"])
        left = kill_trace(s, rec, observer)
        patterned = {(Atom("mic_load"), Atom("handle_cast"), 2),
                     (Atom("erlang"), Atom("monitor"), 2)} <= set(left["patterns"])
        assert patterned == (runtime == "otp25"), left["patterns"]
        with caplog.at_level(logging.WARNING, logger="microscope_jupyter"):
            s.detach()
        assert wait_clean(observer, LOAD) == CLEAN
        assert observer.rpc("code", "is_loaded", [Atom("microscope_agent")]) is False
    warned = [r.getMessage() for r in caplog.records if SWEPT in r.getMessage()]
    assert len(warned) == patterned, warned
    if patterned:
        assert f"cleared {len(left['patterns'])} trace patterns" in warned[0]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_next_trace_takes_over_from_a_killed_one(node_factory, tmp_path, runtime):
    """The next trace of the same modules is not refused as 'pattern in use' by
    our own orphans, and tracks monitors again, instead of blaming another tool."""
    node = node_factory(runtime, prefix="taken")
    s = busy_worker(node, tmp_path)
    try:
        with mic.attach(node.name, cookie=node.cookie) as observer:
            first = s.trace("w1", modules=["mic_load"])
            wait_until(lambda: leftovers(observer, LOAD)["hooks"])
            left = kill_trace(s, first, observer)
            # It names one function: it sweeps that and the monitor BIFs (OTP 25);
            # the detach sweeps the rest of the module.
            second = s.trace("w1", modules=["mic_load.handle_cast/2"])
            assert second.info["monitors"] == "tracked"
            assert second.info["swept"] == (3 if left["patterns"] else 0)
            assert len(left["patterns"]) == (28 if runtime == "otp25" else 0)
            wait_until(lambda: (s.events["kind"] == "call").sum() >= 3)
            second.stop()
            calls = s.events[(s.events["kind"] == "call") & (s.events["seq"] >= second.first_seq)]
            assert set(calls["mfa"]) == {":mic_load.handle_cast/2"}
            s.detach()
            assert wait_clean(observer, LOAD) == CLEAN
    finally:
        s.detach()


def test_the_sweep_leaves_other_tools_and_live_traces_alone(node_factory, tmp_path):
    """OTP 25 (node-wide patterns): a function another tool re-patterned after
    the kill keeps its pattern, and a live trace's monitor patterns stay while
    it runs, though its session's own detach sweeps."""
    node = node_factory("otp25", prefix="others")
    s = busy_worker(node, tmp_path)
    with mic.attach(node.name, cookie=node.cookie) as observer:
        rec = s.trace("w1", modules=["mic_load"])
        wait_until(lambda: leftovers(observer, LOAD)["hooks"])
        kill_trace(s, rec, observer)
        theirs = (Atom("mic_load"), Atom("peek"), 1)
        their_spec = [(Atom("_"), [], [(Atom("return_trace"),)])]
        assert observer.rpc("erlang", "trace_pattern", [theirs, their_spec, [Atom("local")]]) == 1
        # A second notebook traces the worker (no modules): its start sweeps the
        # orphaned monitor patterns and sets its own.
        other = mic.attach(node.name, cookie=node.cookie)
        live = other.trace("w1", state=False)
        assert live.info["monitors"] == "tracked" and live.info["swept"] == 2
        s.detach()
        left = leftovers(observer, LOAD)
        assert left["patterns"] == [theirs, (Atom("erlang"), Atom("monitor"), 2),
                                    (Atom("erlang"), Atom("demonitor"), 1)]
        assert observer.rpc("erlang", "trace_info", [theirs, Atom("match_spec")]) == \
            (Atom("match_spec"), their_spec)
        assert live.running and live.status()["dropped"] == 0
        other.detach()
        assert wait_clean(observer, LOAD)["patterns"] == [theirs]
        observer.rpc("erlang", "trace_pattern", [theirs, False, [Atom("local")]])


def test_an_unload_clears_old_code_another_unload_could_not_purge(node_factory):
    """An unload whose purge a process still needed leaves the agent's old code
    behind; nobody runs it later, but while it is there code:delete refuses.
    The next session loads over it and must still leave nothing at its detach."""
    node = node_factory("otp25", prefix="oldcode")
    facade = Atom("microscope_agent")
    with mic.attach(node.name, cookie=node.cookie) as observer:
        first = mic.attach(node.name, cookie=node.cookie)
        first.processes()                                  # loads the agent
        assert observer.rpc("code", "delete", [facade]) is True   # no purge: old code stays
        assert observer.rpc("erlang", "check_old_code", [facade]) is True
        second = mic.attach(node.name, cookie=node.cookie)
        second.processes()                                 # loads over the stale old code
        second.detach()
        left = observer.eval_erlang(
            "[M || M <- Ms, code:is_loaded(M) =/= false orelse erlang:check_old_code(M)].",
            Ms=[Atom(m) for m in agent_modules()])
        first.detach()
        assert left == []
