"""Findings detected from hand-built recordings."""

from __future__ import annotations

import pytest

from fake_agent import A, B, B2, C, FakeAgent
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.store.event_store import EventStore

GS = Atom("gen_server")


def recorded(build) -> OfflineSession:
    store = EventStore()
    agent = FakeAgent(store, names=[(B, Atom("Elixir.Demo.WorkerB")), (A, Atom("Elixir.Demo.WorkerA"))])
    build(agent)
    agent.flush()
    return OfflineSession(store, {}, None)


def kinds(session) -> dict:
    f = session.findings()
    return dict(zip(f["kind"], f["summary"]))


def test_slow_handler():
    def build(agent):
        agent.event("state", B, payload=(Atom("work"), 0, 1, Atom("noreply"), GS), aux=250_000_000)
        agent.event("state", B, payload=(Atom("quick"), 1, 2, Atom("noreply"), GS), aux=1_000)

    found = kinds(recorded(build))
    assert found == {"slow_handler": "Demo.WorkerB spent 250 ms in handle_info"}


def test_call_timeout():
    reason = (Atom("timeout"), (Atom("gen_server"), Atom("call"), [Atom("Elixir.Demo.WorkerB"), Atom("get")]))

    def build(agent):
        agent.event("exit", A, payload=reason)

    found = kinds(recorded(build))
    assert found["call_timeout"] == "Demo.WorkerA died waiting for a call to Demo.WorkerB that timed out"
    assert "crash" in found


def test_system_monitor_findings_group_per_process():
    def build(agent):
        agent.event("long_gc", B, payload=[(Atom("timeout"), 80)], aux=80)
        agent.event("long_gc", B, payload=[(Atom("timeout"), 120)], aux=120)
        agent.event("long_schedule", A, payload=[(Atom("timeout"), 60)], aux=60)
        agent.event("large_heap", B, payload=[(Atom("heap_size"), 2_000_000)], aux=2_000_000)

    found = kinds(recorded(build))
    assert found["long_gc"] == "Demo.WorkerB spent 120 ms in one garbage collection (2 times)"
    assert found["long_schedule"].startswith("Demo.WorkerA ran 60 ms without yielding the "
                                             "scheduler (once or twice: on a busy machine")
    assert found["large_heap"] == "Demo.WorkerB reached an allocated heap of 2,000,000 words"
    f = recorded(build).findings()
    assert f.set_index("kind").loc["long_schedule", "severity"] == "info"   # once: no alarm


def test_a_process_that_hogs_its_scheduler_again_and_again_is_a_warning():
    def build(agent):
        for ms in (60, 90, 70):
            agent.event("long_schedule", A, payload=[(Atom("timeout"), ms)], aux=ms)

    f = recorded(build).findings().set_index("kind")
    assert f.loc["long_schedule", "severity"] == "warning"
    assert f.loc["long_schedule", "summary"] == ("Demo.WorkerA ran 90 ms without yielding the "
                                                 "scheduler (3 times)")


def test_mailbox_growth_is_the_nodes_own_count():
    def build(agent):
        for i in range(60):
            agent.event("receive", B, payload=i)
        agent.event("mailbox", B, aux=57)     # the node's own message_queue_len
        for i in range(60):
            agent.event("state", B, payload=(i, i, i + 1, Atom("noreply"), GS))

    found = kinds(recorded(build))
    assert found == {"mailbox_growth":
                     "the mailbox of Demo.WorkerB grew to 57 messages (the node's own count), "
                     "still 57 at its last sample"}


def test_a_count_only_estimated_between_samples_raises_nothing():
    # 60 arrivals and no callback seen to take them: the model says 60, but
    # messages leave queues unseen (a DOWN flushed by demonitor), and the
    # node's own samples say 0 before and after. No finding on an estimate.
    def build(agent):
        agent.event("mailbox", B, aux=0)
        for i in range(60):
            agent.event("receive", B, payload=(Atom("DOWN"), i))
        agent.event("mailbox", B, aux=0)

    rec = recorded(build)
    assert kinds(rec) == {}
    tt = rec.time_travel()
    snap = tt.snapshot_at(30)
    row = snap[snap["pid"] == snap["pid"].iloc[0]].iloc[0]
    # a plain process takes the node's nearer count: when it takes a message no event shows
    assert row["mailbox_len"] == 0 and row["mailbox_basis"].startswith(
        "estimate: the node's 0 at seq 0, earlier (a plain process: 30 arrived between")
    last = tt.snapshot_at(len(rec.events) - 1).iloc[0]
    assert last["mailbox_len"] == 0 and last["mailbox_basis"] == "node"


def test_a_busy_but_keeping_up_process_is_not_growth():
    def build(agent):
        for i in range(200):
            agent.event("receive", B, payload=i)
            agent.event("state", B, payload=(i, i, i + 1, Atom("noreply"), GS))

    assert "mailbox_growth" not in kinds(recorded(build))


def _clause_error(function, args, error=Atom("function_clause")):
    where = [(Atom("file"), list(b"lib/demo/worker_b.ex")), (Atom("line"), 11)]
    return (error, [(Atom("Elixir.Demo.WorkerB"), Atom(function), args, where),
                    (Atom("gen_server"), Atom("try_dispatch"), 4, [])])


def test_unhandled_message_names_the_callback_the_message_and_where():
    message = (Atom("update"), 10, Atom("checkpoint"))
    state = {Atom("count"): 9}

    def build(agent):
        agent.event("send", A, B, payload=message)                  # 0
        agent.event("receive", B, payload=message)                  # 1
        agent.event("receive", B, payload=Atom("other"))            # 2
        agent.event("exit", B, payload=_clause_error("handle_info", [message, state]))  # 3

    found = recorded(build).findings()
    unhandled = found[found["kind"] == "unhandled_message"].iloc[0]
    assert unhandled["summary"] == (
        "Demo.WorkerB crashed: no clause of Demo.WorkerB.handle_info/2 matched the message "
        "{:update, 10, :checkpoint} (in state %{count: 9}) at lib/demo/worker_b.ex:11. "
        "Add a clause for it, or stop sending it.")
    assert unhandled["evidence"] == [1, 3] and unhandled["first_seq"] == 1  # its arrival, the exit
    assert "crash" in set(found["kind"])  # the crash stays a finding of its own
    # The update was handled, fatally: not lost. :other died unread; it came from an
    # untraced sender, so it counts from its arrival.
    lost = found[found["kind"] == "lost_message"].iloc[0]
    assert lost["evidence"] == [2] and "1 reached it but were never handled" in lost["summary"]


def test_unhandled_message_for_calls_statem_events_and_elixir_exceptions():
    struct = {Atom("__struct__"): Atom("Elixir.FunctionClauseError"), Atom("arity"): 3}
    reasons = {
        "call": _clause_error("handle_call", [Atom("nope"), (A, Atom("tag")), 0], struct),
        "statem": _clause_error("handle_event", [Atom("info"), Atom("nope"), Atom("idle"), 0]),
    }
    for label, reason in reasons.items():
        found = kinds(recorded(lambda agent: agent.event("exit", B, payload=reason)))
        assert "matched the message :nope (in state 0)" in found["unhandled_message"], label


def test_a_function_clause_outside_a_callback_is_only_a_crash():
    not_a_callback = _clause_error("parse", [Atom("x")])
    no_stack = (Atom("function_clause"), [])
    for reason in (not_a_callback, no_stack, Atom("function_clause")):
        found = kinds(recorded(lambda agent: agent.event("exit", B, payload=reason)))
        assert set(found) == {"crash"}, reason


def test_lost_messages_to_a_pid_whose_name_moved_on_name_the_stale_pid():
    name = Atom("Elixir.Demo.WorkerB")

    def build(agent):
        agent.event("exit", B, payload=Atom("boom"))                          # 0
        agent.event("send_to_dead", A, B, payload=(Atom("update"), 1))        # 1 before the restart
        agent.event("unregister", B, name)                                     # 2
        agent.event("register", B2, name)                                      # 3
        agent.event("send_to_dead", A, B, payload=(Atom("update"), 2))        # 4
        agent.event("send_to_dead", A, B, payload=(Atom("update"), 3))        # 5

    lost = kinds(recorded(build))["lost_message"]
    assert lost.startswith("3 message(s) from Demo.WorkerA to Demo.WorkerB were lost")
    assert (f"2 of them were sent after {B2} had taken the name Demo.WorkerB: the sender holds "
            "a stale pid") in lost


def _recycle(agent, late_send: bool):
    """Two clients each lose one call to B in the moment it ends (both looked it
    up just before); B2 takes its name; with late_send, A sends to B again after."""
    name = Atom("Elixir.Demo.WorkerB")
    agent.event("exit", B, payload=Atom("normal"))
    agent.event("send_to_dead", A, B, payload=(Atom("get"), 1))
    agent.event("send_to_dead", C, B, payload=(Atom("get"), 2))
    agent.event("unregister", B, name)
    agent.event("register", B2, name)
    if late_send:
        agent.event("send_to_dead", A, B, payload=(Atom("get"), 3))


def test_clients_that_lost_one_call_each_as_a_named_process_ended_hold_no_stale_pid():
    causes = recorded(lambda agent: _recycle(agent, late_send=False)).explain().causes
    assert "stale_pid" not in set(causes["kind"])
    # one that sends to it again, after its name moved on, does
    causes = recorded(lambda agent: _recycle(agent, late_send=True)).explain().causes
    assert "stale_pid" in set(causes["kind"])


def test_lost_messages_without_a_successor_say_nothing_of_stale_pids():
    def build(agent):
        agent.event("exit", B, payload=Atom("boom"))
        agent.event("send_to_dead", A, B, payload=(Atom("update"), 1))

    assert "stale" not in kinds(recorded(build))["lost_message"]


def test_durations_follow_the_nodes_time_unit():
    # A node whose native time unit is the microsecond: a 150 ms handler is
    # 150_000 native units, and must still be slow; a 2 ms one shows as 2000 us.
    store = EventStore()
    agent = FakeAgent(store, names=[(B, Atom("Elixir.Demo.WorkerB"))], native_per_second=10**6)
    agent.event("state", B, payload=(Atom("work"), 0, 1, Atom("noreply"), GS), aux=150_000)
    agent.event("state", B, payload=(Atom("quick"), 1, 2, Atom("noreply"), GS), aux=2_000)
    agent.flush()
    session = OfflineSession(store, {}, None)
    assert list(session.states()["duration_us"]) == [150_000.0, 2_000.0]
    assert kinds(session) == {"slow_handler": "Demo.WorkerB spent 150 ms in handle_info"}


def test_lost_messages_from_an_untraced_sender_say_so():
    def build(agent):
        agent.event("receive", B, payload=(Atom("update"), 1))
        agent.event("exit", B, payload=Atom("killed"))

    found = kinds(recorded(build))
    assert "from an untraced sender to Demo.WorkerB" in found["lost_message"]
    assert "None" not in found["lost_message"]


def test_timeouts_are_never_messages_nor_lost():
    # Process.sleep inside a handler, then a normal exit: no message, nothing lost.
    def build(agent):
        agent.event("timeout", A)
        agent.event("receive", A, payload=Atom("go"))
        agent.event("timeout", A)
        agent.event("exit", A, payload=Atom("normal"))

    session = recorded(build)
    assert list(session.messages()["text"]) == [":go"]
    assert "lost_message" not in kinds(session)
    tt = session.time_travel()
    assert all(len(m) <= 1 for m in tt.snapshot_at(2)["mailbox"])


def test_a_real_timeout_message_pairs_with_the_fired_after_that_follows_its_send():
    # The receiver's own `after` fired before; then a traced process sends the
    # atom `timeout`, which the trace spells the same way.
    def build(agent):
        agent.event("timeout", B)
        agent.event("send", A, B, payload=Atom("timeout"))
        agent.event("timeout", B)

    session = recorded(build)
    messages = session.messages()
    assert list(messages["text"]) == [":timeout"]
    assert list(messages["status"]) == ["delivered"] and list(messages["receive_seq"]) == [2]


def test_the_lost_message_gate_never_hides_a_loss():
    """joins.may_have_lost decides from the headers alone whether the message
    join can find a loss; whenever it says no, the join finds none. And
    joins.lost_candidates, which pairs only what can be lost, finds the same
    lost rows as the whole join."""
    from hypothesis import given, settings, strategies as st

    from microscope_jupyter.store import joins

    procs = st.sampled_from([A, B, B2, C])
    step = st.one_of(
        st.tuples(st.just("send"), procs, procs, st.integers(0, 3)),
        st.tuples(st.just("receive"), procs, st.none(), st.integers(0, 3)),
        st.tuples(st.just("exit"), procs, st.none(), st.none()),
        st.tuples(st.just("send_to_dead"), procs, procs, st.integers(0, 3)))

    @settings(max_examples=60, deadline=None)
    @given(st.lists(step, max_size=14))
    def check(steps):
        def build(agent):
            for kind, pid, peer, n in steps:
                payload = Atom("boom") if kind == "exit" else (Atom("m"), n)
                agent.event(kind, pid, peer, payload=payload)
        s = recorded(build)
        lost = s.findings(grouped=False).query("kind == 'lost_message'")
        whole = s.messages()
        if not joins.may_have_lost(s.store):
            assert lost.empty and not (whole["status"] == "lost").any()
        # the lost rows found without pairing the rest are the whole join's
        subset = joins.lost_candidates(s.store)
        key = ["send_seq", "receive_seq", "status"]
        assert (subset.loc[subset["status"] == "lost", key].astype(str).values.tolist()
                == whole.loc[whole["status"] == "lost", key].astype(str).values.tolist())

    check()


def test_all_is_well_says_where_unmatched_receives_came_from():
    """Two receives and one traced send: one message came from outside the
    recording (an rpc, a shell), which is no loss and no finding."""
    def build(agent):
        agent.event("send", A, B, payload=Atom("ping"))
        agent.event("receive", B, payload=Atom("ping"))
        agent.event("receive", B, payload=Atom("from_a_shell"))

    text = recorded(build).explain().text
    assert text.startswith("Nothing looks wrong"), text
    assert "1 message sent and 2 received (at least 1 from timers, ports or processes the trace did not follow)" in text


def _lost(build) -> list[str]:
    f = recorded(build).findings()
    return f[(f["kind"] == "lost_message") & f["severity"].isin(["warning", "error"])]["summary"].tolist()


def test_a_down_flushed_by_demonitor_is_not_lost():
    ref = Atom("ref-1")   # any term stands for the monitor's reference

    def build(agent):
        agent.event("state", B, payload=(Atom("tick"), 0, 1, Atom("noreply"), GS))
        agent.event("receive", B, payload=(Atom("DOWN"), ref, Atom("process"), A, Atom("normal")))
        agent.event("demonitor", B, peer=A, payload=ref)       # demonitor(Ref, [:flush])
        agent.event("exit", B, payload=Atom("killed"))

    assert _lost(build) == []


def test_a_down_of_a_monitor_never_removed_is_lost():
    # a GenServer (its callbacks say what it took): the DOWN came after its
    # last callback and no demonitor removed that monitor
    def build(agent):
        agent.event("state", B, payload=(Atom("tick"), 0, 1, Atom("noreply"), GS))
        agent.event("receive", B, payload=(Atom("DOWN"), Atom("ref-2"), Atom("process"), A,
                                           Atom("normal")))
        agent.event("demonitor", B, peer=A, payload=Atom("another-ref"))
        agent.event("exit", B, payload=Atom("killed"))

    assert len(_lost(build)) == 1


def test_the_exit_signal_a_process_died_of_is_not_lost():
    def build(agent):
        agent.event("receive", B, payload=(Atom("EXIT"), A, Atom("shutdown")))
        agent.event("exit", B, payload=Atom("shutdown"))

    assert _lost(build) == []


def test_the_nodes_sample_says_what_was_still_queued():
    # Three arrivals no callback took, then the node's own count: 1. Two had
    # left the queue unseen; only the newest can have died unread.
    def build(agent):
        agent.event("state", B, payload=(Atom("tick"), 0, 1, Atom("noreply"), GS))  # 0
        for n in range(3):
            agent.event("receive", B, payload=(Atom("update"), n))      # 1, 2, 3
        agent.event("mailbox", B, aux=1)                                  # 4
        agent.event("exit", B, payload=Atom("killed"))                    # 5

    f = recorded(build).findings()
    lost = f[f["kind"] == "lost_message"].iloc[0]
    assert lost["evidence"] == [3] and lost["summary"].startswith("1 message(s)")


def test_a_late_notification_to_a_process_that_ended_normally_is_info():
    def build(agent):
        agent.event("exit", B, payload=Atom("normal"))
        agent.event("send_to_dead", A, B, payload=(Atom("stop"), Atom("ref-3")))

    f = recorded(build).findings()
    row = f[f["kind"] == "lost_message"].iloc[0]
    assert row["severity"] == "info" and "after it had ended normally" in row["summary"]
    # the same to a process that crashed is an error, and so is a stream of them
    def crashed(agent):
        agent.event("exit", B, payload=Atom("boom"))
        agent.event("send_to_dead", A, B, payload=(Atom("stop"), Atom("ref-3")))

    def stream(agent):
        agent.event("exit", B, payload=Atom("normal"))
        for n in range(3):
            agent.event("send_to_dead", A, B, payload=(Atom("update"), n))

    assert len(_lost(crashed)) == 1 and len(_lost(stream)) == 1


def test_each_crash_counts_only_its_own_callers():
    from fake_agent import NODE
    from microscope_jupyter.beam.terms import Pid

    name = Atom("Elixir.Demo.WorkerB")
    servers = [Pid(Atom(NODE), 200 + k, 0, 7) for k in range(3)]
    callers = [Pid(Atom(NODE), 300 + k, 0, 7) for k in range(3)]

    def build(agent):
        for k, (server, caller) in enumerate(zip(servers, callers)):
            agent.event("register", server, name)
            agent.event("exit", server, payload=Atom("boom"))
            agent.event("unregister", server, name)
            agent.event("exit", caller, payload=(Atom("boom"), (Atom("gen_server"), Atom("call"),
                                                                [name, Atom("get")])))

    causes = recorded(build).explain().causes
    crashes = causes[causes["kind"] == "crash_restart"]
    assert len(crashes) == 3
    assert all("1 caller(s) died of their calls to it" in s for s in crashes["summary"]), \
        crashes["summary"].tolist()


def test_a_callback_reported_ahead_of_its_receive_still_took_that_message():
    # The hook's report of the {:get, 1} call reached the tracer before the
    # receive trace message did, so its state event has the lower seq. The
    # call that crashed is the next one, {:get, 20}: that is what it was
    # handling, not {:get, 1}.
    from microscope_jupyter.beam.terms import Reference
    from fake_agent import NODE

    def call(key, n):
        return (Atom("$gen_call"), (A, Reference(Atom(NODE), n, (n, 0, 0))), (Atom("get"), key))

    first, fatal = call(1, 1), call(20, 2)
    badarg = (Atom("badarg"), [(Atom("Elixir.Demo.WorkerB"), Atom("handle_call"), 3,
                                [(Atom("file"), list(b"lib/demo/worker_b.ex")), (Atom("line"), 30)])])

    def build(agent):
        agent.event("state", B, payload=(first, {}, {}, (Atom("reply"), 1), GS),
                    aux=1000, ts=5000)                               # 0: took it at 4000
        agent.flush()                                                # the next batch:
        agent.event("receive", B, payload=first, ts=3000)            # 1
        agent.event("receive", B, payload=fatal, ts=6000)            # 2
        agent.event("exit", B, payload=badarg, ts=7000)              # 3

    rec = recorded(build)
    lead = rec.explain().causes
    crash = lead[lead["kind"] == "crash_restart"]["summary"].iloc[0]
    assert "It was handling the call {:get, 20} (seq 2)" in crash, crash
    f = rec.findings()
    assert not (f["kind"] == "lost_message").any(), f["summary"].tolist()


def test_a_genserver_that_stops_on_a_message_did_not_lose_it():
    # handle_cast(:done, s) -> {:stop, :normal, s}: no state event for it
    def build(agent):
        agent.event("receive", B, payload=(Atom("$gen_cast"), (Atom("event"), 1)))
        agent.event("state", B, payload=((Atom("$gen_cast"), (Atom("event"), 1)), 0, 1,
                                         Atom("noreply"), GS))
        agent.event("receive", B, payload=(Atom("$gen_cast"), Atom("done")))
        agent.event("exit", B, payload=Atom("normal"))

    assert _lost(build) == []


def test_a_plain_process_ended_by_its_last_message_did_not_lose_it():
    def build(agent):
        agent.event("send", B, peer=A, payload=Atom("working"))
        agent.event("receive", B, payload=(Atom("stop"), Atom("ref")))
        agent.event("exit", B, payload=Atom("normal"))

    assert _lost(build) == []


def test_a_result_carried_by_an_exit_is_no_crash_and_a_recycle_is_no_warning():
    from microscope_jupyter.beam.terms import Reference
    from fake_agent import B2, NODE

    ref = Reference(Atom(NODE), 1, (1, 2, 3))
    name = Atom("Elixir.Demo.WorkerB")

    def build(agent):
        agent.event("exit", A, payload=(ref, Atom("return"), [1, 2]))      # an erpc worker
        agent.event("exit", B, payload=Atom("normal"))                      # recycled
        agent.event("unregister", B, name)
        agent.event("register", B2, name)

    f = recorded(build).findings()
    assert not (f["kind"] == "crash").any(), f["summary"].tolist()
    restart = f[f["kind"] == "restart"].iloc[0]
    assert restart["severity"] == "info" and restart["summary"].endswith("ended normally")


def test_messages_that_left_a_queue_unseen_are_not_counted_queued():
    from microscope_jupyter.beam.terms import Reference
    from fake_agent import NODE

    ref = Reference(Atom(NODE), 1, (4, 5, 6))
    down = (Atom("DOWN"), ref, Atom("process"), A, Atom("normal"))

    def build(agent):
        agent.event("mailbox", B, aux=0, ts=1000)                                   # 0
        agent.event("receive", B, payload=(Atom("system"), (A, ref), Atom("get_state")),
                    ts=2000)                                                        # 1 sys
        agent.event("receive", B, payload=down, ts=3000)                            # 2
        agent.event("demonitor", B, peer=A, payload=ref, ts=4000)                   # 3 flush
        agent.event("receive", B, payload=(ref, Atom("return"), 7), ts=5000)       # 4 erpc
        agent.event("state", B, payload=(Atom("tick"), 0, 1, Atom("noreply"), GS),
                    aux=1000, ts=7000)                                              # 5
        agent.event("receive", B, payload=Atom("tick"), ts=5500)                   # (handled)

    tt = recorded(build).time_travel()
    lengths = [int(tt.snapshot_at(i).iloc[0]["mailbox_len"]) for i in range(len(tt.raw))]
    assert max(lengths) <= 1, lengths     # each left as it came, or at its demonitor
    assert lengths[-1] == 0


def test_a_buffer_flushed_now_and_then_is_no_growth():
    # a batcher: one entry a callback, flushed every 25 (4% of steps shrink)
    def build(agent):
        buffer = []
        for n in range(120):
            before = list(buffer)
            buffer = [] if n % 25 == 24 else buffer + [n]
            agent.event("state", B, payload=((Atom("item"), n), before, list(buffer),
                                             Atom("noreply"), GS))

    assert recorded(build).explain().causes.empty


def test_explain_never_says_all_is_well_while_a_finding_stands():
    def build(agent):
        for n in range(3):
            agent.event("state", B, payload=((Atom("work"), n), n, n + 1, Atom("noreply"), GS),
                        aux=250_000_000)                     # three 250 ms callbacks

    rec = recorded(build)
    assert (rec.findings()["severity"] == "warning").any()
    e = rec.explain()
    assert not e.text.startswith("Nothing looks wrong"), e.text
    assert "Demo.WorkerB spent 250 ms in handle_info" in e.text


def test_a_namesake_on_another_node_is_no_restart():
    """A cluster: node a's Relay.Sink dies; node b's Relay.Sink (a process of
    its own) registers afterwards. Names are per node: no restart, one crash."""
    from microscope_jupyter.beam.terms import Pid

    store = EventStore()
    name = Atom("Elixir.Relay.Sink")
    sink_a, sink_b = Pid(Atom("a@host"), 60, 0, 1), Pid(Atom("b@host"), 60, 0, 1)
    a = FakeAgent(store, source="a", node="a@host", names=[(sink_a, name)])
    b = FakeAgent(store, source="b", node="b@host")
    a.event("exit", sink_a, payload=Atom("boom"))
    a.flush()
    b.event("register", sink_b, name)
    b.flush()
    f = OfflineSession(store, {}, None).findings()
    assert f["kind"].tolist() == ["crash"], f["summary"].tolist()
    # ...and on one node, the same story is a restart
    store = EventStore()
    a = FakeAgent(store, source="a", node="a@host", names=[(sink_a, name)])
    a.event("exit", sink_a, payload=Atom("boom"))
    a.event("register", Pid(Atom("a@host"), 61, 0, 1), name)
    a.flush()
    f = OfflineSession(store, {}, None).findings()
    assert sorted(f["kind"]) == ["crash", "restart"], f["summary"].tolist()


@pytest.mark.parametrize("build", [
    lambda a: (a.event("long_gc", B, payload=[(Atom("timeout"), 120)], aux=120),
               a.event("large_heap", B, payload=[(Atom("heap_size"), 2_000_000)], aux=2_000_000)),
    lambda a: [a.event("long_schedule", A, payload=[(Atom("timeout"), ms)], aux=ms)
               for ms in (60, 90, 70)],
    lambda a: a.event("exit", A, payload=(Atom("timeout"), (Atom("gen_server"), Atom("call"),
                                                          [Atom("Elixir.Demo.WorkerB"), Atom("get")]))),
], ids=["gc_and_heap", "scheduler_hog", "call_timeout"])
def test_explain_never_says_nothing_is_wrong_while_a_finding_stands(build):
    """Issue 27's consistency rule: every warning or error finding is part of a
    cause (by its evidence or its process), or a cause of its own."""
    s = recorded(build)
    standing = s.findings()
    standing = standing[standing["severity"].isin(["warning", "error"])]
    assert len(standing), "the recording must hold a finding, or this proves nothing"
    answer = s.explain()
    assert not answer.text.startswith("Nothing looks wrong"), answer.text
    evidence = {seq for seqs in answer.causes["evidence"] for seq in seqs}
    named = {p for procs in answer.causes["processes"] for p in procs}
    for f in standing.itertuples(index=False):
        assert (f.first_seq in evidence or set(f.evidence) & evidence
                or (f.name if isinstance(f.name, str) else f.pid) in named), f


def test_a_call_that_died_unread_is_no_lost_message():
    """A gen call monitors its callee: a request still queued when the callee
    died, or sent to a dead pid, ends the caller's call with the reason. The
    caller knows; only a cast or a plain message goes missing in silence."""
    from microscope_jupyter.beam.terms import Reference

    message = (Atom("update"), 10, Atom("checkpoint"))
    call = (Atom("$gen_call"), (A, Reference(Atom("demo@host"), 5, (1, 2, 3))), Atom("get"))
    cast = (Atom("$gen_cast"), Atom("flush"))

    def build(agent):
        agent.event("send", A, B, payload=message)                  # 0
        agent.event("receive", B, payload=message)                  # 1
        for queued in (call, cast):
            agent.event("send", A, B, payload=queued)               # 2, 4
            agent.event("receive", B, payload=queued)               # 3, 5
        agent.event("exit", B, payload=_clause_error("handle_info", [message, 0]))   # 6
        agent.event("send", A, B, payload=call)                     # 7: to the dead pid

    found = recorded(build).findings()
    lost = found[found["kind"] == "lost_message"]
    assert len(lost) == 1 and lost["evidence"].iloc[0] == [4], lost.to_string()
    assert "1 reached it but were never handled" in lost["summary"].iloc[0]


def test_a_state_that_grows_over_many_callbacks_is_found_from_a_sample():
    def build(agent):
        for n in range(600):
            agent.event("state", B, payload=((Atom("item"), n), list(range(n)), list(range(n + 1)),
                                             Atom("noreply"), GS))

    causes = recorded(build).explain().causes
    assert causes["kind"].tolist() == ["state_growth"], causes
    assert "grew steadily from 0 to 600 entries over 600 callbacks" in causes["summary"].iloc[0]


def test_a_state_whose_events_only_lengthen_is_not_decoded_whole(monkeypatch):
    """A pool's log line grows in bytes, not entries: its 600 states are sized
    from a sample, never all decoded (60k such took ~45 s)."""
    from microscope_jupyter.analysis import growth

    def build(agent):
        for n in range(600):
            agent.event("state", B, payload=((Atom("checkout"), n), {Atom("last"): "x" * n},
                                             {Atom("last"): "x" * (n + 1)}, Atom("noreply"), GS))

    def whole(*args):
        raise AssertionError("every state decoded")

    monkeypatch.setattr(growth.joins, "states", whole)
    assert growth.state_growth(recorded(build).facts) == []
