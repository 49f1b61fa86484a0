"""Truth under load: what a recording says about busy, backlogged, big-state
processes matches the node itself.

Ground truth always comes from the node, read by a second hidden node (an
observer Session) or from the app's own counters, never from the recording
under test. The apps are in tests/erlang/mic_load.erl.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom
from microscope_jupyter.store.otp import STATE_UNKNOWN, state_recorded
from nodes import load_test_module, wait_until

HANDLED = Atom("handled")


@pytest.fixture
def load_node(node_factory, any_node, tmp_path):
    """A fresh node per test (backlogs and leftover hooks must not leak between
    tests), on the runtime of ``any_node`` (OTP 25 and OTP 28)."""
    node = node_factory(any_node.runtime, prefix="load")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_test_module(s, "mic_load", tmp_path)
        yield node, s
    node.stop()


def observer(node):
    return mic.attach(node.name, cookie=node.cookie)


def queue_len(obs, name: str) -> int:
    return obs.eval_erlang(f"element(2, erlang:process_info(whereis({name}), message_queue_len)).")


class QueueSampler(threading.Thread):
    """The node's own message_queue_len of one process, every 100 ms, stamped
    with the node's clock (monotonic + offset, as the recording's ts)."""

    SOURCE = """
    P = whereis(Name),
    {_, Len} = erlang:process_info(P, message_queue_len),
    {erlang:convert_time_unit(erlang:monotonic_time() + erlang:time_offset(), native, nanosecond),
     Len}.
    """

    def __init__(self, obs, name: str):
        super().__init__(daemon=True)
        self.obs, self.proc_name, self.samples = obs, Atom(name), []
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.samples.append(self.obs.eval_erlang(self.SOURCE, Name=self.proc_name))
            self._halt.wait(0.1)

    def stop(self):
        self._halt.set()
        self.join(5)


def test_receive_timeouts_are_events_not_messages(load_node):
    node, s = load_node
    s.rpc("mic_load", "start_healthy", [])
    rec = s.trace()
    time.sleep(1.0)
    # A real message that happens to be the atom `timeout`, from a traced sender
    # (the trace spells it like a fired `after`; its send tells them apart).
    rec.eval_traced("mic_ticker ! timeout.", lang="erlang")
    wait_until(lambda: ((s.events["kind"] == "send") & (s.events["text"] == ":timeout")).any())
    rec.stop()
    s.rpc("mic_load", "stop_healthy", [])

    events = s.events
    timeouts = events[events["kind"] == "timeout"]
    # sleepers, tasks (timer:sleep), and the ticker's gen_server timeout
    assert len(timeouts) > 20
    messages = s.messages()
    as_messages = messages[messages["text"] == ":timeout"]
    # Only the one real `timeout` message is a message, paired with its send.
    assert len(as_messages) == 1 and as_messages["send_seq"].notna().all()
    assert (as_messages["status"] == "delivered").all()
    findings = s.findings()
    assert not (findings["kind"] == "lost_message").any(), findings["summary"].tolist()
    tt = s.time_travel()
    for seq in np.linspace(0, len(events) - 1, 12).astype(int):
        snap = tt.snapshot_at(int(seq))
        for box in snap["mailbox"]:
            assert Atom("timeout") not in box


def test_hooks_never_wait_for_a_backlogged_server(load_node):
    node, s = load_node
    worker = s.rpc("mic_load", "start_worker", [Atom("mic_worker")])
    s.rpc("gen_server", "cast", [Atom("mic_worker"), (Atom("work"), 1500, -1)])
    feeder = s.rpc("mic_load", "feed", [worker, 5, 2, 400])
    with observer(node) as obs:
        wait_until(lambda: queue_len(obs, "mic_worker") >= 100)
        t0 = time.monotonic()
        rec = s.trace("mic_worker", feeder)
        started_in = time.monotonic() - t0
        assert started_in < 1.0, started_in
        # The worker is deep in a 1.5 s callback with a queue behind it.
        hooks = rec.hooks()
        assert list(hooks["status"]) == ["pending"]
        assert rec.status()["state_hooks"]["pending"] == 1
        wait_until(lambda: rec.hooks()["status"].iloc[0] == "installed", timeout=15)
        wait_until(lambda: len(s.states("mic_worker")) >= 20)
        rec.stop()
        truth = obs.eval_erlang("element(2, maps:find(handled, sys:get_state(mic_worker))).")
    s.rpc("mic_load", "stop_feed", [feeder])

    states = s.states("mic_worker")
    installed_at = int(rec.hooks()["installed_seq"].iloc[0])
    assert len(states) > 5 and (states["seq"] > installed_at).all()
    recorded = states[[b != STATE_UNKNOWN for b in states["before"]]]
    # At most the first transition can lack its before (a message someone else
    # sent between our two requests); none is stale.
    assert len(states) - len(recorded) <= 1
    befores = [b[HANDLED] for b in recorded["before"]]
    afters = [a[HANDLED] for a in recorded["after"]]
    assert all(a == b + 1 for b, a in zip(befores, afters)), list(zip(befores, afters))[:5]
    assert all(b == a for a, b in zip(afters, befores[1:]))
    # ... and the counter never jumps: a correct rule finds nothing wrong.
    violations = s.expect("mic_worker", lambda before, msg, after:
                          after[HANDLED] == before[HANDLED] + 1)
    assert violations.empty
    assert afters[-1] <= truth


def test_a_genserver_calling_out_of_its_callbacks_shows_its_real_mailbox(load_node):
    """mic_stats handles each {relay, K} by calling mic_store: the replies it
    takes inside its callbacks were never queued. Time travel's mailbox length
    of mic_stats is held to the node's own, sampled from a second node."""
    node, s = load_node
    s.rpc("mic_load", "start_healthy", [])
    with observer(node) as obs:
        sampler = QueueSampler(obs, "mic_stats")
        sampler.start()
        rec = s.trace("mic_stats")
        relays = s.eval_erlang("spawn(fun() -> [begin gen_server:cast(mic_stats, {relay, K}), "
                               "timer:sleep(5) end || K <- lists:seq(1, 300)] end).")
        wait_until(lambda: not s.rpc("erlang", "is_process_alive", [relays]))
        wait_until(lambda: len(sampler.samples) >= 20)
        rec.stop()
        sampler.stop()
    s.rpc("mic_load", "stop_healthy", [])
    stats = next(p.pid for p in s.time_travel().processes() if p.last_name(10**9) == "mic_stats")
    relayed = s.states("mic_stats")
    assert (relayed["message"].astype(str).str.contains("relay")).sum() >= 250
    assert mailbox_matches_samples(s, sampler, stats) >= 10   # was ~1 off per reply


def test_mailbox_length_matches_the_node(load_node):
    node, s = load_node
    worker = s.rpc("mic_load", "start_worker", [Atom("mic_worker")])
    # Already backlogged when the trace starts: a long callback with 400 waiting.
    s.rpc("gen_server", "cast", [Atom("mic_worker"), (Atom("work"), 800, -1)])
    for n in range(400):
        s.rpc("gen_server", "cast", [Atom("mic_worker"), (Atom("work"), 4, n)])
    with observer(node) as obs:
        at_start = queue_len(obs, "mic_worker")
        assert at_start > 300
        sampler = QueueSampler(obs, "mic_worker")
        sampler.start()
        # fed every 2 ms, handled every 4+ ms: it keeps growing
        feeder = s.rpc("mic_load", "feed", [worker, 2, 4, 100_000])
        rec = s.trace("mic_worker", feeder)
        time.sleep(3.0)
        rec.stop()
        sampler.stop()
        s.rpc("mic_load", "stop_feed", [feeder])

    assert mailbox_matches_samples(s, sampler, str(worker)) >= 20
    # The time a message waited grows with the backlog (the receive event's
    # stamp need not: before OTP 27 it marks when the queue was fetched).
    casts = s.messages()
    casts = casts[casts["receiver"].eq(str(worker)) & casts["wait_us"].notna()]
    assert len(casts) > 30
    # each waited behind the ~400 queued before the trace: seconds, not microseconds
    assert (casts["wait_us"] > 1e6).all()
    rising = casts["send_seq"].rank().corr(casts["wait_us"].rank())   # Spearman's rho
    assert rising > 0.5, casts[["send_seq", "latency_us", "wait_us"]].to_string()
    # The finding reports the real peak, queued-before-the-trace messages included.
    growth = s.findings()
    growth = growth[growth["kind"] == "mailbox_growth"]
    assert len(growth) == 1
    peak = int(growth["summary"].iloc[0].split("grew to ")[1].split()[0])
    true_peak = max(q for t, q in sampler.samples)
    assert abs(peak - true_peak) <= max(0.1 * true_peak, 3), (peak, true_peak)


def test_large_state_costs_little_and_says_what_changed(load_node):
    node, s = load_node
    s.rpc("mic_load", "start_big", [Atom("mic_big"), 4_000_000])
    # The monitor's thresholds where the tool once caused false alarms (300-770 ms
    # schedules); a loaded host can stall a scheduler for tens of ms on its own.
    rec = s.trace("mic_big", system_monitor={"long_schedule_ms": 200, "long_gc_ms": 200})
    for _ in range(30):
        s.rpc("mic_load", "bump", [Atom("mic_big")])
    for _ in range(10):
        s.rpc("mic_load", "peek", [Atom("mic_big")])
    rec.stop()
    states = s.states("mic_big")
    assert len(states) == 40
    bumps = states[states["message"] == Atom("bump")]
    # Never copied whole (4 MB each time), but each change is named.
    assert all(not state_recorded(a) for a in bumps["after"])
    changes = list(s.query.state_timeline("mic_big")["changes"][bumps.index])
    # The first callback after the hook went in has no copied base to compare
    # with (the hook sees a state for the first time): it says so.
    assert changes[0] == "(not recorded)"
    assert changes[1:] == [f".count: now {n}" for n in range(2, 31)]
    peeks = states[states["message"] == Atom("peek")]
    assert (peeks["changed"] == False).all()  # noqa: E712 - a pandas column
    # What the hook cost is on record, and small: no O(state) work per callback.
    assert (states["tool_us"] > 0).all()
    assert states["tool_us"].median() < 200, states["tool_us"].describe()
    kinds = set(s.findings()["kind"])
    assert not kinds & {"slow_handler", "long_schedule", "mailbox_growth"}, kinds


def test_a_cache_that_gains_a_key_per_call_is_not_walked_but_its_size_is_told(load_node):
    """A memo cache: the big map changes on every call. The hook does not walk
    it (that work would grow with the cache); it says how its size moved."""
    node, s = load_node
    s.rpc("mic_load", "start_big", [Atom("mic_big"), 1_000_000])
    keys = s.eval_erlang("maps:size(maps:get(blob, sys:get_state(mic_big))).")
    rec = s.trace("mic_big")
    wait_until(lambda: rec.hooks()["status"].iloc[0] == "installed")
    for _ in range(30):
        s.rpc("gen_server", "call", [Atom("mic_big"), Atom("memo")])
    wait_until(lambda: len(s.states("mic_big")) == 30)
    rec.stop()
    changes = list(s.query.state_timeline("mic_big")["changes"])
    for n, text in enumerate(changes[1:], start=1):
        assert set(text.split("; ")) == {   # in the map's own key order
            f".count: now {n + 1}", f".blob: changed, a map of {keys + n:,} -> "
            f"{keys + n + 1:,} keys (too big to compare on every callback)"}, text
    truth = s.eval_erlang("maps:size(maps:get(blob, sys:get_state(mic_big))).")
    assert truth == keys + 30
    # and a cache that only ever gains is named as growing, from those sizes alone
    growth = s.explain("why does mic_big keep growing?").causes.query("kind == 'state_growth'")
    assert len(growth) == 1, s.explain().text
    assert f"The growing part is .blob, a map now of {truth:,} keys" in growth["summary"].iloc[0]


def test_stop_is_quick_and_leaves_nothing_whatever_the_backlog(load_node):
    node, s = load_node
    s.rpc("mic_load", "start_worker", [Atom("mic_worker")])
    s.rpc("gen_server", "cast", [Atom("mic_worker"), (Atom("work"), 2500, -1)])
    s.eval_erlang("[gen_server:cast(mic_worker, {work, 0, N}) || N <- lists:seq(1, 10000)], ok.")
    with observer(node) as obs:
        rec = s.trace("mic_worker")
        time.sleep(0.5)
        assert queue_len(obs, "mic_worker") > 9000
        t0 = time.monotonic()
        rec.stop()
        stop_took = time.monotonic() - t0
        stopped_at = pd.Timestamp.now(tz="UTC")
        assert stop_took <= 1.5, stop_took
        assert (s.events["ts"] <= stopped_at).all()
        left = obs.eval_erlang("""
            P = whereis(mic_worker),
            {erlang:trace_info(P, flags), erlang:process_info(P, message_queue_len),
             [erlang:trace_info(MFA, traced) || MFA <- [{erlang, monitor, 2}, {erlang, demonitor, 1}]]}.""")
        assert left[0] == (Atom("flags"), []) and left[1][1] > 5000  # still backlogged
        assert left[2] == [(Atom("traced"), False)] * 2
        # A second trace while the old hook request is still queued: the old
        # hook, once it lands, is inert and removes itself; nothing of it shows.
        rec2 = s.trace("mic_worker")
        wait_until(lambda: queue_len(obs, "mic_worker") == 0, timeout=30)
        wait_until(lambda: rec2.hooks()["status"].iloc[0] == "installed")
        for n in range(5):
            s.rpc("gen_server", "cast", [Atom("mic_worker"), (Atom("work"), 0, n)])
        wait_until(lambda: len(s.states("mic_worker")) >= 5)
        rec2.stop()
        second = s.events[s.events["seq"] >= rec2.first_seq]
        assert not second["text"].fillna("").str.contains("microscope").any()
        assert not (second["kind"] == "send_to_dead").any()
        assert not (s.findings()["kind"] == "lost_message").any()
        states2 = s.states("mic_worker")  # the second trace's hook works, and counts on
        assert [a[HANDLED] - b[HANDLED] for b, a in zip(states2["before"], states2["after"])
                if state_recorded(b)] == [1] * 5
        hook_left = obs.eval_erlang("""
            {status, _, _, [_, _, _, Dbg | _]} = sys:get_status(mic_worker),
            string:find(lists:flatten(io_lib:format("~p", [Dbg])), "microscope") =/= nomatch.""")
        assert hook_left is False


def test_the_tools_own_work_is_not_the_apps(load_node):
    node, s = load_node
    s.rpc("mic_load", "start_worker", [Atom("mic_worker")])
    rec = s.trace(system_monitor={"long_schedule_ms": 1, "long_gc_ms": 1})
    for n in range(20):
        s.rpc("gen_server", "cast", [Atom("mic_worker"), (Atom("work"), 1, n)])
    s.processes()   # the agent's own table walk, on the node, during the trace
    wait_until(lambda: len(s.states("mic_worker")) == 20)
    rec.stop()
    events = s.events
    agent_pids = {str(rec.agent), str(rec.info["tracer"])}
    assert not events["pid"].isin(agent_pids).any()
    texts = events["text"].fillna("")
    ours = texts.str.contains(r"microscope|\{:system,|:sys\b", regex=True)
    assert not ours.any(), texts[ours].tolist()
    found = s.findings()
    assert not found["pid"].isin(agent_pids).any()


def test_a_healthy_app_raises_no_alarm(load_node):
    node, s = load_node
    s.rpc("mic_load", "start_healthy", [])
    time.sleep(0.2)
    rec = s.trace(system_monitor=True)
    time.sleep(10)
    rec.stop()
    s.rpc("mic_load", "stop_healthy", [])
    assert rec.status()["dropped"] == 0
    findings = s.findings()
    bad = findings[findings["severity"].isin(["error", "warning"])]
    assert bad.empty, bad[["kind", "summary"]].to_string()
    kinds = set(s.events["kind"])
    assert {"send", "receive", "state", "timeout", "spawn", "exit"} <= kinds
    explanation = s.explain("is anything wrong with mic_store?")
    assert explanation.causes.empty, explanation.causes["summary"].tolist()
    assert explanation.text.startswith("Nothing looks wrong")
    unusual = s.anomalies()   # the later half against the earlier: nothing changed
    assert unusual.empty, unusual[["kind", "summary", "baseline", "now", "z"]].to_dict("records")


def test_queries_speak_of_what_the_recording_did_not_see(load_node, caplog):
    node, s = load_node
    s.rpc("mic_load", "start_worker", [Atom("mic_b")])
    s.rpc("mic_load", "start_worker", [Atom("mic_idle")])
    # A sender caches mic_b's pid; mic_b dies and is restarted before we attach.
    s.eval_erlang("""
        B1 = whereis(mic_b),
        S = spawn(fun Loop() -> receive stop -> ok after 20 -> B1 ! {'$gen_cast', {work, 0, 0}},
                                                               Loop() end end),
        register(mic_sender, S),
        exit(B1, kill), ok.""")
    wait_until(lambda: s.eval_erlang("whereis(mic_b).") == Atom("undefined"))
    s.rpc("mic_load", "start_worker", [Atom("mic_b")])
    rec = s.trace("mic_sender", "mic_b")
    wait_until(lambda: (s.events["kind"] == "send_to_dead").sum() >= 5)
    rec.stop()
    with caplog.at_level("WARNING"):
        flow = s.query.message_flow("mic_sender", "mic_b")
    assert flow.empty
    assert "stale pid" in flow.attrs["hint"] and "mic_sender" in caplog.text
    with caplog.at_level("WARNING"):
        idle = s.states("mic_idle")
    assert idle.empty and "is alive on the node" in caplog.text
    with pytest.raises(mic.errors.QueryError):
        s.states("no_such_process_anywhere")
    # the stale pid, though its crash came before the trace: named in the explanation
    cause = s.explain("why does mic_b get nothing from mic_sender?").causes.iloc[0]
    assert cause["kind"] == "stale_pid" and "mic_sender" in cause["summary"]
    assert "before the recording began" in cause["summary"]
    trace = s.query.trace_message("{:\"$gen_cast\", _}")
    assert "nan" not in " ".join(trace["text"]) and "None" not in " ".join(trace["text"])
    s.eval_erlang("mic_sender ! stop, ok.")


def mailbox_matches_samples(s, sampler, pid: str) -> int:
    """Time travel's mailbox length of ``pid`` at each of the node's own samples
    within the recording, held to within 10% (or 3); how many were checked."""
    tt = s.time_travel()
    first, last = s.events["ts"].iloc[0].value, s.events["ts"].iloc[-1].value
    checked = 0
    for ts_ns, truth in sampler.samples:
        if not first <= ts_ns <= last:
            continue
        snap = tt.snapshot_at(pd.Timestamp(ts_ns, tz="UTC"))
        shown = int(snap.loc[snap["pid"] == pid, "mailbox_len"].iloc[0])
        assert abs(shown - truth) <= max(0.1 * truth, 3), (shown, truth)
        checked += 1
    return checked


def test_the_state_hooks_own_ets_work_is_not_the_apps(load_node):
    node, s = load_node
    s.rpc("mic_load", "start_worker", [Atom("mic_worker")])
    # the app's own ETS work: a process that inserts into its table on each message
    s.eval_erlang("""
        P = spawn(fun() -> T = ets:new(app_table, [set]),
                           Loop = fun L() -> receive {put, N} -> ets:insert(T, {N, N}), L();
                                                     stop -> ok end end,
                           Loop() end),
        register(mic_app_ets, P), ok.""")
    rec = s.trace("mic_worker", "mic_app_ets", modules=["ets:insert/2"])
    wait_until(lambda: rec.hooks()["status"].iloc[0] == "installed")
    for n in range(10):
        s.rpc("gen_server", "cast", [Atom("mic_worker"), (Atom("work"), 0, n)])
        s.eval_erlang(f"mic_app_ets ! {{put, {n}}}, ok.")
    wait_until(lambda: len(s.states("mic_worker")) == 10
               and (s.events["kind"] == "return").sum() >= 10)
    rec.stop()
    s.eval_erlang("mic_app_ets ! stop, ok.")
    calls = s.calls()
    # every insert the hook made in mic_worker's callbacks is the tool's, not the app's
    assert len(calls) == 10, calls[["pid", "name", "text"]].to_string()
    assert set(calls["name"]) == {"mic_app_ets"}
    assert not (s.events["kind"].isin(["call", "return"]) & (s.events["name"] == "mic_worker")).any()


def test_a_collection_longer_than_the_monitor_has_watched_is_left_out(load_node):
    """OTP 25 reports the VM's uptime as the duration of a collection that began
    before the system monitor was set (seen at 5.8-12.3 s in processes younger
    than that): the tracer leaves out any long_gc longer than its own life.
    The reports are fed to the tracer as the system monitor sends them."""
    node, s = load_node
    worker = s.rpc("mic_load", "start_worker", [Atom("mic_worker")])
    rec = s.trace("mic_worker", system_monitor=True)
    # the VM's uptime (as OTP 25 reports it) is longer than the tracer has lived
    uptime_ms = s.eval_erlang("erlang:convert_time_unit(erlang:monotonic_time() - "
                              "erlang:system_info(start_time), native, millisecond).")
    s.eval_erlang("""
        [Tracer ! {monitor, P, long_gc, [{timeout, Ms}, {heap_size, 10}]}
         || Ms <- [Uptime, 2]], ok.""",
                  Tracer=rec.info["tracer"], P=worker, Uptime=uptime_ms)
    wait_until(lambda: (s.events["kind"] == "long_gc").any())
    rec.stop()
    gcs = s.events[s.events["kind"] == "long_gc"]
    assert len(gcs) == 1, gcs[["seq", "text"]].to_string()
    assert gcs["text"].iloc[0].startswith("[timeout: 2,"), gcs["text"].iloc[0]


HOARDER = """
P = spawn(fun() ->
              register(mic_hoard, self()),
              Loop = fun Loop(Held) ->
                             receive
                                 {add, N} -> Loop([binary:copy(<<N>>, 100000) | Held]);
                                 {count, From} -> From ! {held, length(Held)}, Loop(Held)
                             end
                     end,
              Loop([])
          end),
[spawn(fun() -> timer:sleep(100 * N), P ! {add, N} end) || N <- lists:seq(1, 25)],
P.
"""

BINARY_BYTES = """
{binary, Bs} = erlang:process_info(whereis(mic_hoard), binary),
lists:sum([Size || {_, Size, _} <- Bs]).
"""


def test_binary_bytes_are_the_nodes_own(load_node):
    """The refc binaries a process references, off its heap (neither memory nor
    heap shows them), are read by the sampler at most once a second while it
    runs, and at the start and the end: the last reading is the node's own."""
    node, s = load_node
    rec = s.trace()
    hoarder = rec.eval_traced(HOARDER, lang="erlang")   # it and its children traced
    with observer(node) as obs:
        wait_until(lambda: obs.eval_erlang(
            "whereis(mic_hoard) ! {count, self()}, receive {held, N} -> N end.") == 25)
        rec.stop()
        on_node = obs.eval_erlang(BINARY_BYTES)
    assert on_node >= 25 * 100_000   # (OTP 28 adds a few hundred bytes of its own)
    readings = s.metrics()
    readings = readings[(readings["metric"] == "binary_bytes")
                        & (readings["pid"] == str(hoarder))]
    # 2.5 s of adding: the first reading, about one a second, and the last
    assert 2 <= len(readings) <= 6, readings.to_string()
    assert readings["value"].iloc[-1] == on_node
    assert readings["value"].is_monotonic_increasing
