"""s.explain() names the cause, with its evidence, on real nodes: the demo's
stale pid, a backlog behind a slow handler, a growing state; and says nothing
is wrong on a healthy app."""

from __future__ import annotations

import re

import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom
from nodes import load_test_module, wait_until

QUESTION = "Why isn't WorkerB receiving all updates from WorkerA?"


def test_the_demo_story_is_a_stale_pid(demo):
    rec = demo.trace()
    demo.demo.start_updates(20)
    wait_until(lambda: (demo.events["kind"] == "exit").any() and
               (demo.messages()["status"] == "lost").sum() >= 3, timeout=30)
    rec.stop()
    e = demo.explain(QUESTION)
    print(e.text)
    lead = e.causes.iloc[0]
    assert lead["kind"] == "stale_pid"
    assert "Demo.WorkerA" in e.text and ".worker_b" in e.text
    assert "Demo.WorkerB" in e.text and "crash" in e.text.lower() or "died" in e.text
    lost = demo.messages()
    lost_seqs = set(lost.loc[lost["status"] == "lost", "send_seq"].astype(int))
    assert set(lead["evidence"]) & lost_seqs
    assert e.text == demo.explain(QUESTION).text   # deterministic
    assert "stale_pid" in e._repr_markdown_()


@pytest.fixture
def load_node(node_factory, tmp_path):
    node = node_factory("otp25", prefix="explain")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_test_module(s, "mic_load", tmp_path)
        yield s
    node.stop()


def test_a_backlog_behind_a_slow_handler(load_node):
    s = load_node
    worker = s.rpc("mic_load", "start_worker", [Atom("mic_worker")])
    rec = s.trace("mic_worker")
    # a cast every 2 ms, each taking 5 ms to handle
    feeder = s.rpc("mic_load", "feed", [worker, 2, 5, 400])
    queue = "element(2, erlang:process_info(whereis(mic_worker), message_queue_len))."
    wait_until(lambda: s.eval_erlang(queue) >= 120, timeout=30)
    seen_before = s.eval_erlang(queue)    # the node's own counts, around the stop
    rec.stop()
    seen_after = s.eval_erlang(queue)
    s.rpc("mic_load", "stop_feed", [feeder])
    e = s.explain("why is mic_worker slow?")
    lead = e.causes.iloc[0]
    assert lead["kind"] == "backlog" and "mic_worker" in lead["processes"]
    assert "handle_cast of {:work, _, _}" in e.text
    # the rates: about 500/s arrive, about 200/s are handled
    handled, arrived = [float(x) for x in re.findall(
        r"it handled (\d+) per second while about (\d+) arrived", e.text)[0]]
    assert arrived > 1.5 * handled
    assert handled <= 1000 / 5 * 1.05     # 5 ms a callback: no more than 200 a second
    assert "busy" in e.text and e.causes["evidence"].iloc[0]
    # the peak it reports is the node's: within 10% of what the node said around the stop
    peak = int(re.search(r"grew to (\d+) messages", e.text).group(1))
    assert 0.9 * seen_before <= peak <= 1.1 * max(seen_after, seen_before)


def test_a_state_that_keeps_growing(load_node):
    s = load_node
    s.eval_erlang("{ok, _} = gen_server:start({local, mic_grow}, mic_load, store, []), ok.")
    rec = s.trace("mic_grow")
    s.eval_erlang("[begin gen_server:call(mic_grow, {put, I, I}), timer:sleep(5) end "
                  "|| I <- lists:seq(1, 60)], ok.")
    wait_until(lambda: len(s.states("mic_grow")) == 60)
    rec.stop()
    e = s.explain()
    growth = e.causes[e.causes["kind"] == "state_growth"]
    assert len(growth) == 1 and "mic_grow" in growth["summary"].iloc[0]
    assert "from 0 to 60 entries" in growth["summary"].iloc[0]
    assert "map itself gains ~1.0 keys per callback" in growth["summary"].iloc[0]
    # the node's own memory figures, sampled while it grew
    memory = s.eval_erlang("element(2, erlang:process_info(whereis(mic_grow), memory)).")
    table = s.metrics()
    grow = table[table["name"] == "mic_grow"]
    sampled = grow.loc[grow["metric"] == "memory_bytes", "value"]
    assert len(sampled) >= 2 and sampled.iloc[-1] > sampled.iloc[0]
    assert 0.8 * memory <= sampled.iloc[-1] <= 1.25 * memory
    assert (grow.loc[grow["metric"] == "reductions_per_s", "value"] > 0).any()


def test_a_backlog_the_tool_itself_made_says_so(load_node):
    s = load_node
    worker = s.rpc("mic_load", "start_worker", [Atom("mic_worker")])
    rec = s.trace("mic_worker")
    wait_until(lambda: rec.hooks()["status"].iloc[0] == "installed")
    # casts as fast as a loop sends them, each doing nothing: the hook costs more than the work
    s.rpc("mic_load", "feed", [worker, 0, 0, 20000])
    wait_until(lambda: s.eval_erlang("maps:get(handled, sys:get_state(mic_worker)).") >= 20000,
               timeout=60)
    rec.stop()
    cause = s.explain("why is mic_worker behind?").causes.iloc[0]
    assert cause["kind"] == "backlog" and "The recording itself added" in cause["summary"]
    share = int(re.search(r"itself added (\d+)%", cause["summary"]).group(1))
    assert share > 30   # the hook's ~2 us against callbacks that do nothing
    # past 100% it says the backlog is mostly the tool's, and trusts itself less
    assert ("much of this backlog is the tool's" in cause["summary"]) == (share > 100)
    assert cause["confidence"] == (0.5 if share > 100 else 0.8)


def test_a_crash_its_restart_and_the_callers_that_timed_out(load_node, tmp_path):
    s = load_node
    load_test_module(s, "mic_ledger", tmp_path)
    s.rpc("mic_ledger", "start", [])
    callers = s.rpc("mic_ledger", "callers", [3, 100])
    rec = s.trace()
    for n in (5, 7):
        s.rpc("mic_ledger", "deposit", [n])
    old = s.eval_erlang("whereis(mic_ledger).")
    # a settlement that takes 400 ms and then crashes; three callers give up after 100 ms
    s.rpc("mic_ledger", "settle", [400])
    s.rpc("mic_ledger", "go", [callers])
    wait_until(lambda: s.eval_erlang("whereis(mic_ledger).") not in (old, Atom("undefined")))
    new = str(s.eval_erlang("whereis(mic_ledger)."))
    # the agent hooks the restarted ledger as it comes up; the app goes on once it has
    wait_until(lambda: ((s.events["kind"] == "hook") & (s.events["pid"] == new)).any())
    s.rpc("mic_ledger", "deposit", [1])      # the app goes on, with what the restart left
    wait_until(lambda: len(s.findings(grouped=False).query("kind == 'call_timeout'")) == 3
               and len(s.states("mic_ledger")) == 3)
    rec.stop()
    causes = s.explain("what happened to mic_ledger?").causes
    crash = causes.query("kind == 'crash_restart'")
    assert len(crash) == 1          # the callers' deaths are its consequences, not causes
    summary = crash["summary"].iloc[0]
    assert ("mic_ledger crashed: {:badmatch, {:error, :overdrawn}} in :mic_ledger.handle_cast/2 "
            "at tests/erlang/mic_ledger.erl:") in summary
    assert "It was handling the cast {:settle, 400}" in summary
    assert "%{balance: 12} became %{balance: 0}" in summary      # what the restart lost
    assert "3 caller(s) died of their calls to it, 3 of them by the call timeout" in summary
    timeouts = s.findings(grouped=False).query("kind == 'call_timeout'")
    assert set(timeouts["first_seq"]) <= set(crash["evidence"].iloc[0])
    # the settle message was handled (fatally), and the three calls that died unread
    # are no lost messages: their callers were told (their calls timed out, above)
    assert not (s.findings()["kind"] == "lost_message").any(), s.findings()["summary"].tolist()
