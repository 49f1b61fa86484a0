"""A trace of a supervisor takes in its whole subtree: every child it already
has, every time (Erlang's supervisors on OTP 25 and 28, Elixir's
DynamicSupervisor on the demo node)."""

from __future__ import annotations

import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom
from nodes import load_test_module, wait_until

CHILDREN = 200


@pytest.fixture
def pool(node_factory, any_node, tmp_path):
    node = node_factory(any_node.runtime, prefix="scope")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_test_module(s, "mic_dynsup", tmp_path)
        s.rpc("mic_dynsup", "start", [Atom("mic_pool"), CHILDREN])
        yield s
    node.stop()


def test_every_existing_child_of_a_supervisor_is_traced_every_time(pool):
    s = pool
    for attempt in range(20):
        rec = s.trace("mic_pool", duration="10s")
        traced = rec.status()["traced_processes"]
        rec.stop()
        assert traced == CHILDREN + 1, (attempt, traced)


def test_a_supervisor_stuck_starting_a_child_does_not_hold_up_the_trace(pool):
    """Asked for its children, a supervisor blocked in a child's start answers
    only when that start ends; the trace starts without its subtree instead."""
    s = pool
    where = "element(2, process_info(whereis(mic_pool), current_function))."
    s.eval_erlang("spawn(fun() -> supervisor:start_child(mic_pool, [block]) end), ok.")
    wait_until(lambda: s.eval_erlang(where) == (Atom("mic_dynsup"), Atom("child"), 1))
    try:
        rec = s.trace("mic_pool", duration="10s")
        # started while the supervisor is still stuck: it did not wait for the answer
        assert s.eval_erlang(where) == (Atom("mic_dynsup"), Atom("child"), 1)
        assert rec.status()["traced_processes"] == 1
        rec.stop()
    finally:
        s.eval_erlang("whereis(mic_pool) ! release, ok.")


def test_every_child_of_an_elixir_dynamic_supervisor_is_traced(demo):
    demo.eval_erlang(f"""
        Self = self(),
        spawn(fun() ->
            {{ok, Sup}} = 'Elixir.DynamicSupervisor':start_link([{{strategy, one_for_one}},
                                                                {{name, mic_dyn}}]),
            [{{ok, _}} = 'Elixir.DynamicSupervisor':start_child(
                 Sup, {{'Elixir.Agent', fun() -> 0 end}}) || _ <- lists:seq(1, {CHILDREN})],
            Self ! started,
            receive stop -> ok end
        end),
        receive started -> ok after 10000 -> timeout end.""")
    try:
        for attempt in range(5):
            rec = demo.trace("mic_dyn", duration="10s")
            traced = rec.status()["traced_processes"]
            rec.stop()
            assert traced == CHILDREN + 1, (attempt, traced)
    finally:
        demo.eval_erlang("exit(whereis(mic_dyn), shutdown), ok.")
