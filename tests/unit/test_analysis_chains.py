"""Causal chains over hand-built recordings: hop by hop, and where the time went."""

from __future__ import annotations

import re

from fake_agent import A, B, B2, C, MS, FakeAgent
from microscope_jupyter.analysis import chains, findings
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.beam.terms import Atom, Pid, Reference
from microscope_jupyter.store.event_store import EventStore

D = Pid(Atom("demo@host"), 104, 0, 7)
GS = Atom("gen_server")


def handled(agent, pid, message, start_ms, work_ms):
    """``pid`` handles ``message`` from ``start_ms`` for ``work_ms`` (its state event)."""
    agent.event("state", pid, payload=(message, 0, 0, Atom("noreply"), GS), aux=work_ms * MS,
                ts=(start_ms + work_ms) * MS)


def relay_recording() -> OfflineSession:
    """A asks B (m1); B, while handling it, tells C (m2), which waits 40 ms behind a
    backlog; C, handling it, tells D (m3). Meanwhile B also got an unrelated m0."""
    store = EventStore()
    agent = FakeAgent(store, names=[(A, Atom("Elixir.A")), (B, Atom("Elixir.B")),
                                    (C, Atom("Elixir.C")), (D, Atom("Elixir.D"))])
    m0, m1, m2, m3 = ((Atom("m"), k) for k in range(4))
    agent.event("send", A, B, payload=m0, ts=1 * MS)
    agent.event("receive", B, payload=m0, ts=2 * MS)
    handled(agent, B, m0, 2, 1)                        # done at 3 ms
    agent.event("send", A, B, payload=m1, ts=10 * MS)
    agent.event("receive", B, payload=m1, ts=11 * MS)
    agent.event("send", B, C, payload=m2, ts=13 * MS)  # while handling m1
    handled(agent, B, m1, 11, 5)                       # 11-16 ms
    agent.event("receive", C, payload=m2, ts=14 * MS)
    agent.event("send", C, D, payload=m3, ts=55 * MS)  # while handling m2, begun at 53 ms
    handled(agent, C, m2, 53, 4)                       # waited 53 - 13 = 40 ms
    agent.event("receive", D, payload=m3, ts=56 * MS)
    handled(agent, D, m3, 56, 1)
    agent.flush()
    return OfflineSession(store, {"node": "demo@host"}, None)


def test_a_chain_runs_back_through_each_callback_to_its_first_cause():
    recorded = relay_recording()
    messages = recorded.messages()
    m3 = int(messages.loc[messages["text"] == "{:m, 3}", "send_seq"].iloc[0])
    chain = chains.chain(messages, m3)
    assert chain["text"].tolist() == ["{:m, 1}", "{:m, 2}", "{:m, 3}"]      # not the unrelated m0
    assert chain["sender_name"].tolist() == ["A", "B", "C"]
    assert chain["wait_us"].round().tolist() == [1000.0, 40000.0, 1000.0]
    assert chain["slowest"].tolist() == [False, True, False]               # where it lost its time
    assert chain["worked_us"].round().tolist()[1:] == [2000.0, 2000.0]     # 13 - 11 ms, 55 - 53 ms


def test_an_event_starts_the_chain_of_what_its_process_was_handling():
    recorded = relay_recording()
    messages = recorded.messages()
    events = recorded.events
    c_state = int(events[(events["kind"] == "state") & (events["pid"] == str(C))]["seq"].iloc[0])
    start = chains.message_for_event(messages, c_state, str(C))    # as it returned
    assert messages.loc[messages["send_seq"] == start, "text"].iloc[0] == "{:m, 2}"
    assert chains.message_for_event(messages, 0, None) == 0             # a send is its own start
    assert chains.chain(messages, 999_999).empty


# -- the chain of each finding kind ends with the event that caused it

STATS = C
TAG = Reference(Atom("demo@host"), 9, (9, 0, 0))


def _recorded(build) -> OfflineSession:
    store = EventStore()
    agent = FakeAgent(store, names=[(A, Atom("Elixir.A")), (B, Atom("Elixir.B")),
                                    (STATS, Atom("Elixir.Stats"))])
    build(agent)
    agent.flush()
    return OfflineSession(store, {"node": "demo@host"}, None)


def _clause_error(message, state):
    where = [(Atom("file"), list(b"lib/b.ex")), (Atom("line"), 11)]
    return (Atom("function_clause"), [(Atom("Elixir.B"), Atom("handle_info"), [message, state],
                                       where), (GS, Atom("try_dispatch"), 4, [])])


CHECKPOINT = (Atom("update"), 10, Atom("checkpoint"))


def _dies_on_a_checkpoint(agent, us=1000):
    """The demo's crash, as the review saw it: while B handles {:update, 9} it
    calls Stats; the checkpoint arrives while it waits, then the reply; the
    update returns, and the checkpoint matches no clause. The last message B
    took before dying is the reply, not the one that killed it."""
    update = (Atom("update"), 9)
    call = (GS_CALL, (B, TAG), Atom("received"))
    at = lambda n: 1_000_000 + n * us                       # noqa: E731 (µs apart)
    agent.event("send", A, B, payload=update, ts=at(0))                       # 0
    agent.event("receive", B, payload=update, ts=at(1))                       # 1
    agent.event("send", B, STATS, payload=call, ts=at(2))                     # 2
    agent.event("send", A, B, payload=CHECKPOINT, ts=at(3))                   # 3
    agent.event("receive", B, payload=CHECKPOINT, ts=at(4))                   # 4
    agent.event("receive", STATS, payload=call, ts=at(5))                     # 5
    agent.event("send", STATS, B, payload=(TAG, Atom("ok")), ts=at(6))        # 6
    agent.event("state", STATS, payload=(call, 0, 1, (Atom("reply"), Atom("ok")), GS),
                aux=2 * us, ts=at(7))                                         # 7
    agent.event("receive", B, payload=(TAG, Atom("ok")), ts=at(8))            # 8
    agent.event("state", B, payload=(update, 8, 9, Atom("noreply"), GS),
                aux=8 * us, ts=at(9))                                         # 9
    agent.event("exit", B, payload=_clause_error(CHECKPOINT, 9), ts=at(10))   # 10


GS_CALL = Atom("$gen_call")


def _chain_of(recorded, kind) -> list[str]:
    findings = recorded.findings()
    assert kind in set(findings["kind"]), findings["kind"].tolist()
    finding = next(findings[findings["kind"] == kind].itertuples(index=False))
    return chains.for_finding(recorded.facts, recorded.messages(), finding)["text"].tolist()


def test_a_crash_chain_ends_with_the_message_that_crashed_the_process():
    recorded = _recorded(_dies_on_a_checkpoint)
    assert _chain_of(recorded, "crash") == ["{:update, 10, :checkpoint}"]
    # the event itself leads there too (the widget's path for a click on the exit)
    assert chains.for_event(recorded.messages(), 10, str(B),
                            chains.fatal_messages(recorded.facts))["text"].tolist() == [
        "{:update, 10, :checkpoint}"]


def test_an_unhandled_message_chain_ends_with_that_message():
    assert _chain_of(_recorded(_dies_on_a_checkpoint), "unhandled_message") == [
        "{:update, 10, :checkpoint}"]


def test_a_restart_chain_ends_with_the_message_its_predecessor_died_of():
    def build(agent):
        _dies_on_a_checkpoint(agent)
        agent.event("unregister", B, Atom("Elixir.B"))
        agent.event("register", B2, Atom("Elixir.B"))

    assert _chain_of(_recorded(build), "restart") == ["{:update, 10, :checkpoint}"]


def test_a_lost_message_chain_ends_with_the_lost_message():
    def build(agent):
        _dies_on_a_checkpoint(agent)
        agent.event("receive", A, payload=Atom("tick"))
        agent.event("send_to_dead", A, B, payload=(Atom("update"), 11))

    assert _chain_of(_recorded(build), "lost_message") == [":tick", "{:update, 11}"]


def _waiting_on_a_call(agent):
    """A, handling a timer's :tick, calls B; B, handling that, calls A: neither answers."""
    agent.event("receive", A, payload=Atom("tick"))
    agent.event("send", A, B, payload=(GS_CALL, (A, TAG), Atom("get")))
    agent.event("receive", B, payload=(GS_CALL, (A, TAG), Atom("get")))
    agent.event("send", B, A, payload=(GS_CALL, (B, TAG), Atom("peek")))
    agent.event("receive", A, payload=(GS_CALL, (B, TAG), Atom("peek")))


def test_a_call_timeout_chain_ends_with_the_call_it_gave_up_on():
    def build(agent):
        _waiting_on_a_call(agent)
        agent.event("exit", A, payload=(Atom("timeout"), (GS, Atom("call"),
                                                           [B, Atom("get"), 5000])))

    chain = _chain_of(_recorded(build), "call_timeout")
    assert chain[0] == ":tick" and chain[-1].endswith(":get}") and len(chain) == 2, chain


def test_a_deadlock_chain_ends_with_the_first_call_of_the_cycle():
    chain = _chain_of(_recorded(_waiting_on_a_call), "deadlock")
    assert chain[0] == ":tick" and chain[-1].endswith(":get}") and len(chain) == 2, chain


def _slow_work(agent, during=None):
    """B takes :work (A's), and :next arrives while it works 250 ms on it."""
    agent.event("send", A, B, payload=Atom("work"), ts=1 * MS)
    agent.event("receive", B, payload=Atom("work"), ts=2 * MS)
    agent.event("receive", B, payload=Atom("next"), ts=3 * MS)
    if during:
        during(agent)
    agent.event("state", B, payload=(Atom("work"), 0, 1, Atom("noreply"), GS),
                aux=250 * MS, ts=252 * MS)
    agent.event("state", B, payload=(Atom("next"), 1, 2, Atom("noreply"), GS),
                aux=1 * MS, ts=253 * MS)


def test_a_slow_handler_chain_ends_with_the_message_that_callback_handled():
    # not :next, which was queued when the slow callback returned
    assert _chain_of(_recorded(_slow_work), "slow_handler") == [":work"]


def test_a_state_violation_chain_ends_with_the_message_of_that_transition():
    recorded = _recorded(_slow_work)
    recorded.expect("B", lambda before, message, after: message != Atom("work"))
    assert _chain_of(recorded, "state_violation") == [":work"]


def test_node_monitor_and_mailbox_chains_end_with_the_message_in_hand():
    def during(agent):
        agent.event("long_gc", B, payload=[(Atom("timeout"), 80)], aux=80)
        agent.event("long_schedule", B, payload=[(Atom("timeout"), 60)], aux=60)
        agent.event("large_heap", B, payload=[(Atom("heap_size"), 2_000_000)], aux=2_000_000)
        agent.event("mailbox", B, aux=57)

    recorded = _recorded(lambda agent: _slow_work(agent, during))
    for kind in ("long_gc", "long_schedule", "large_heap", "mailbox_growth"):
        assert _chain_of(recorded, kind) == [":work"], kind


def test_a_trace_gap_has_no_chain():
    def build(agent):
        _slow_work(agent, lambda agent: agent.event("dropped", aux=40))

    assert _chain_of(_recorded(build), "trace_gap") == []


CHAINED = {"crash", "unhandled_message", "restart", "lost_message", "call_timeout", "deadlock",
           "slow_handler", "state_violation", "long_gc", "long_schedule", "large_heap",
           "mailbox_growth", "trace_gap"}


def test_every_finding_kind_has_a_chain_test():
    # the kinds findings.py documents; a new one fails here until it has a test above
    documented = set(re.findall(r"``([a-z_]+)``", findings.__doc__))
    assert documented == CHAINED


def test_a_wait_too_short_to_matter_is_never_the_longest():
    recorded = _recorded(_dies_on_a_checkpoint)    # waits of a few µs
    messages = recorded.messages()
    update = int(messages.loc[messages["text"] == "{:update, 9}", "send_seq"].iloc[0])
    chain = chains.chain(messages, update)
    assert chain["wait_us"].notna().all() and not chain["slowest"].any()
