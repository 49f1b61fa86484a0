"""Generated tests from hand-laid recordings: what a crash inside a call
becomes in each mode."""

from __future__ import annotations

from fake_agent import A, B, NODE, demo_recording, tally
from microscope_jupyter.beam.terms import Atom, Reference


def crash_in_a_call(agent, first_reply=None):
    """tally (its :get answered 2), a :get answered {:ok, 7}, then a :get that
    crashes WorkerB."""
    if first_reply is None:
        tally(agent)
    else:
        call = (Atom("$gen_call"), (A, Reference(Atom(NODE), 7, (1, 2, 3))), Atom("get"))
        agent.event("send", A, peer=B, payload=call)
        agent.event("receive", B, payload=call)
        agent.event("state", B, payload=(call, 7, 7, (Atom("reply"), first_reply),
                                         Atom("gen_server")), aux=1000)
    call = (Atom("$gen_call"), (A, Reference(Atom(NODE), 8, (1, 2, 3))), Atom("get"))
    agent.event("send", A, peer=B, payload=call)
    agent.event("receive", B, payload=call)
    agent.event("state", B, payload=(call, 7, 7, (Atom("reply"), (Atom("ok"), 7)),
                                     Atom("gen_server")), aux=1000)
    call = (Atom("$gen_call"), (A, Reference(Atom(NODE), 9, (1, 2, 3))), Atom("get"))
    agent.event("send", A, peer=B, payload=call)
    agent.event("receive", B, payload=call)
    frame = (Atom("Elixir.Demo.WorkerB"), Atom("handle_call"), 3,
             [(Atom("file"), "lib/demo/worker_b.ex"), (Atom("line"), 12)])
    agent.event("exit", B, payload=(Atom("badarith"), [frame]))


def test_reproduce_asserts_the_crash_and_regression_the_answer():
    s = demo_recording(crash_in_a_call)
    reproduce = s.exunit("Demo.WorkerB").source
    assert "catch_exit(GenServer.call(pid, :get))" in reproduce
    assert "assert_receive {:DOWN, ^ref, :process, ^pid, reason}" in reproduce
    regression = s.exunit("Demo.WorkerB", mode="regression").source
    survived = regression.split("it must survive it")[1]
    assert "catch_exit" not in survived and "assert_receive {:DOWN" not in survived
    assert "        GenServer.call(pid, :get)" in survived
    assert 'flunk("Demo.WorkerB crashed on :get" <> ": " <> inspect(reason))' in regression
    # the other :get calls were answered 2 and {:ok, 7}: no shape they share
    assert ("# its answers to the other :get calls (2, {:ok, 7}) share no shape: assert the "
            "reply you expect here") in survived
    assert "    _reply =" in survived      # not asserted: no unused-variable warning either
    assert '"Demo.WorkerB crashed on :get"' in survived


def test_a_call_crashed_on_is_held_to_the_shape_of_its_other_answers():
    s = demo_recording(lambda agent: crash_in_a_call(agent, first_reply=(Atom("ok"), 2)))
    regression = s.exunit("Demo.WorkerB", mode="regression").source
    survived = regression.split("it must survive it")[1]
    assert "    reply =" in survived
    assert "assert {:ok, _} = reply   # as it answered the other :get calls" in survived


def test_a_long_recording_makes_a_short_test_from_its_last_steps():
    from fake_agent import updates

    def build(agent):
        updates(agent, 0, 300, 10, lambda n: 1)          # 300 handled updates, state n -> n + 1
    s = demo_recording(build)
    test = s.exunit("Demo.WorkerB")
    lines = test.source.splitlines()
    assert len(lines) < 200, len(lines)
    assert "the 288 step(s) before it are left out" in test.source
    # it starts from the state the recording holds before the first kept step
    assert "pid = start_recorded(Demo.WorkerB, %{n: 288})" in test.source
    assert test.source.count("send(pid, {:update, ") == 12
    assert "assert %{n: 300} = :sys.get_state(pid)" in test.source
    # between= replays exactly what it names, however long
    seqs = s.states("Demo.WorkerB")["seq"]
    whole = s.exunit("Demo.WorkerB", between=(int(seqs.iloc[0]), int(seqs.iloc[-1]))).source
    assert whole.count("send(pid, {:update, ") == 300 and "left out" not in whole


def test_a_gen_statem_without_its_data_is_refused_in_one_line_not_given_a_genserver_test():
    import pytest

    from microscope_jupyter.beam.terms import Pid
    from microscope_jupyter.errors import QueryError

    conn = Pid(Atom(NODE), 300, 0, 7)

    def build(agent):
        for before, after in (("disconnected", "connected"), ("connected", "disconnected")):
            agent.event("state", conn, payload=((Atom("state_timeout"), Atom("go")),
                                                Atom(before), Atom(after), Atom("noreply"),
                                                Atom("gen_statem")), aux=1000)
    s = demo_recording(build)
    with pytest.raises(QueryError) as info:
        s.exunit(str(conn))
    message = str(info.value)
    assert message.startswith(f"{conn} is a gen_statem recorded without its data")
    assert "generated tests cover GenServer, Agent and :gen_statem processes" in message
    assert "\n" not in message


def test_a_test_says_which_replayed_messages_came_from_timers():
    from fake_agent import MS

    def build(agent):
        tally(agent)
        for n in range(3):          # :tick from a timer: received, sent by no traced process
            agent.event("receive", B, payload=Atom("tick"), ts=(50 + 10 * n) * MS)
            agent.event("state", B, payload=(Atom("tick"), 7, 7, Atom("noreply"),
                                             Atom("gen_server")), aux=1000, ts=(51 + 10 * n) * MS)
    source = demo_recording(build).exunit("Demo.WorkerB").source
    assert "# 3 of the replayed messages (:tick) came from no traced process:" in source
    assert source.count("send(pid, :tick)") == 3
    assert "came from no traced process" not in demo_recording(tally).exunit("Demo.WorkerB").source
