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
    arrived, handled = [float(x) for x in re.findall(
        r"(\d+) arrived per second while it handled (\d+)", e.text)[0]]
    assert arrived > 1.5 * handled
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
