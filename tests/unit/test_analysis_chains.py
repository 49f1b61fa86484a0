"""Causal chains over hand-built recordings: hop by hop, and where the time went."""

from __future__ import annotations

from fake_agent import A, B, C, MS, FakeAgent
from microscope_jupyter.analysis import chains
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.beam.terms import Atom, Pid
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
    start = chains.message_for_event(messages, c_state - 1, str(C))    # just before it returned
    assert messages.loc[messages["send_seq"] == start, "text"].iloc[0] == "{:m, 2}"
    assert chains.message_for_event(messages, 0, None) == 0             # a send is its own start
    assert chains.chain(messages, 999_999).empty
