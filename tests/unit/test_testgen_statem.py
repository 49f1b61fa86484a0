"""A gen_statem's transitions with its data (the hook's reports joined to its
call-traced callbacks, as agent v31 records them), and the ExUnit test
generated from them, from hand-laid recordings."""

from __future__ import annotations

import pytest

from fake_agent import A, NODE, demo_recording
from microscope_jupyter.beam.terms import Atom, Pid, Reference
from microscope_jupyter.errors import QueryError

CONN = Pid(Atom(NODE), 300, 0, 7)
MOD = Atom("conn_fsm")
STATEM, CONSUME, POSTPONE = Atom("gen_statem"), Atom("consume"), Atom("postpone")
FROM = (A, Reference(Atom(NODE), 9, (1, 2, 3)))


def event(agent, etype, content, state, nxt, data, result, how=CONSUME, mailbox=True,
          replies=(), enter=None, fn=None):
    """One event: its callback's call and return, state enter calls, the hook's report."""
    fn = fn or Atom(str(state))
    agent.event("call", CONN, mfa=(MOD, fn, 3), payload=[etype, content, data])
    agent.event("return", CONN, mfa=(MOD, fn, 3), payload=result)
    if enter is not None:
        agent.event("call", CONN, mfa=(MOD, Atom(str(nxt)), 3), payload=[Atom("enter"), state,
                                                                         enter[0]])
        agent.event("return", CONN, mfa=(MOD, Atom(str(nxt)), 3), payload=enter[1])
    agent.event("state", CONN, payload=((etype, content), state, nxt,
                                        (Atom("statem"), how, mailbox, list(replies)), STATEM),
                aux=1000)


def machine(agent):
    idle, busy = Atom("idle"), Atom("busy")
    d0 = {Atom("n"): 0}
    d1 = {Atom("n"): 1}
    call = (Atom("call"), FROM)
    event(agent, Atom("cast"), Atom("later"), idle, idle, d0,
          (Atom("keep_state_and_data"), [Atom("postpone")]), how=POSTPONE)
    event(agent, call, Atom("go"), idle, busy, d0,
          (Atom("next_state"), busy, d1, [(Atom("reply"), FROM, Atom("ok")),
                                          ((Atom("timeout"), Atom("retry")), 200, Atom("r"))]),
          replies=[(FROM, Atom("ok"))],
          enter=(d1, (Atom("keep_state_and_data"), [(Atom("state_timeout"), 500, Atom("done"))])))
    event(agent, Atom("cast"), Atom("later"), busy, busy, d1,
          (Atom("keep_state"), {Atom("n"): 2}), mailbox=False)
    event(agent, (Atom("timeout"), Atom("retry")), Atom("r"), busy, busy, {Atom("n"): 2},
          (Atom("keep_state"), {Atom("n"): 3}))


def test_states_carry_the_data_the_callback_and_the_event_type():
    s = demo_recording(machine)
    states = s.states(str(CONN))
    assert list(states["callback"]) == ["idle/3", "idle/3", "busy/3", "busy/3"]
    assert states["event_type"].iloc[3] == (Atom("timeout"), Atom("retry"))
    assert states["message"].iloc[3] == Atom("r")
    assert list(states["postponed"]) == [True, False, False, False]
    assert states["reply"].iloc[1] == Atom("ok")
    assert [d[Atom("n")] for d in states["data_after"]] == [0, 1, 2, 3]
    assert states["data_before"].iloc[0] == {Atom("n"): 0}


def test_a_gen_statem_gets_a_test_of_its_own_kind():
    source = demo_recording(machine).exunit(str(CONN)).source
    assert "pid = start_recorded(:conn_fsm, :idle, %{n: 0})" in source
    assert ":gen_statem.enter_loop(__MODULE__.Shim" in source
    assert "request_1 = :gen_statem.send_request(pid, :go)" in source
    assert "assert {:reply, :ok} = :gen_statem.receive_response(request_1, 5000)" in source
    # the postponed cast is sent once; its retry is the machine's own
    assert source.count(":gen_statem.cast(pid, :later)") == 1
    assert "(postponed before: the machine retries it itself" in source
    # its retry runs before :sys.get_state answers: one assertion after the call
    assert "assert {:busy, %{n: 2}} = :sys.get_state(pid)" in source
    assert "{:busy, %{n: 1}}" not in source
    # the generic timeout fires by itself: waited for, with its recorded time
    assert "after 200 ms: the test waits for it" in source
    assert "await_state(pid, &match?({:busy, %{n: 3}}, &1), 1200)" in source
    assert "{:timeout, :retry} (200 ms)" in source and ":state_timeout (500 ms)" in source
    assert "GenServer" not in source and "handle_event" in source   # the shim's only


def test_anything_else_is_refused_in_one_line_naming_what_is_supported():
    def plain(agent):
        agent.event("send", A, peer=CONN, payload=Atom("hello"))
        agent.event("receive", CONN, payload=Atom("hello"))
    s = demo_recording(plain)
    with pytest.raises(QueryError) as info:
        s.exunit(str(CONN))
    message = str(info.value)
    assert "generated tests cover GenServer, Agent and :gen_statem processes" in message
    assert "\n" not in message
