"""EventStore and its joins against hand-built agent batches (a fake agent)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.store import joins
from microscope_jupyter.store.event_store import EventStore

from fake_agent import A, B, B2, C, OFFSET, FakeAgent


@pytest.fixture
def store():
    return EventStore()


def test_frame_columns_ids_names_and_time(store):
    agent = FakeAgent(store, names=[(A, Atom("Elixir.Demo.WorkerA"))])
    agent.event("send", A, B, payload=(Atom("update"), 1))
    agent.event("register", B, Atom("Elixir.Demo.WorkerB"))
    agent.event("receive", B, payload=(Atom("update"), 1))
    assert agent.flush() == 3
    frame = store.frame()
    assert list(frame["kind"]) == ["send", "register", "receive"]
    assert list(frame["pid"]) == ["<0.100.0>", "<0.101.0>", "<0.101.0>"]
    assert list(frame["name"]) == ["Demo.WorkerA", "Demo.WorkerB", "Demo.WorkerB"]
    assert frame["text"].iloc[0] == "{:update, 1}"
    assert frame["term"].iloc[0] == (Atom("update"), 1)
    assert frame["ts"].iloc[0].value == OFFSET + 2000
    assert list(frame["seq"]) == [0, 1, 2]


def test_seq_follows_clock_within_a_batch(store):
    agent = FakeAgent(store)
    agent.event("send", A, B, payload=1, ts=5000)
    agent.event("send", A, B, payload=2, ts=3000)
    agent.flush()
    assert list(store.frame()["term"]) == [2, 1]


def test_dropped_rows_carry_their_count(store):
    agent = FakeAgent(store)
    agent.event("dropped", aux=1234)
    agent.flush(seen=1235, dropped=1234)
    frame = store.frame()
    assert frame["term"].iloc[0] == 1234
    assert frame["text"].iloc[0] == "1234 events dropped by the agent"
    assert store.dropped == 1234 and store.seen == 1235


def test_identical_messages_pair_fifo_and_loss_is_marked(store):
    agent = FakeAgent(store)
    for _ in range(3):
        agent.event("send", A, B, payload=Atom("ping"))
    agent.event("receive", B, payload=Atom("ping"))
    agent.event("receive", B, payload=Atom("ping"))
    agent.event("send_to_dead", A, C, payload=Atom("hello"))
    agent.event("receive", C, payload=Atom("unrelated"))  # keeps C observed
    agent.flush()
    table = joins.messages(store)
    sends = table[table["send_seq"].notna()]
    assert list(sends["status"]) == ["delivered", "delivered", "in_flight", "lost"]
    assert list(sends["receive_seq"][:2]) == [3, 4]
    orphan = table[table["send_seq"].isna()]
    assert list(orphan["text"]) == [":unrelated"] and orphan["sender"].iloc[0] is None


def test_send_to_a_name_follows_restarts(store):
    name = Atom("Elixir.Demo.WorkerB")
    agent = FakeAgent(store, names=[(B, name)])
    agent.event("send", A, name, payload=1)
    agent.event("receive", B, payload=1)
    agent.event("exit", B, payload=Atom("boom"))
    agent.event("register", B2, name)
    agent.event("send", A, name, payload=2)
    agent.event("receive", B2, payload=2)
    agent.event("send", A, B, payload=3)   # a stale pid: nobody will ever read it
    agent.flush()
    table = joins.messages(store)
    assert list(table["receiver"]) == ["<0.101.0>", "<0.102.0>", "<0.101.0>"]
    assert list(table["receiver_name"][:2]) == ["Demo.WorkerB", "Demo.WorkerB"]
    assert list(table["status"]) == ["delivered", "delivered", "lost"]


def test_unobserved_receiver(store):
    agent = FakeAgent(store)
    agent.event("send", A, C, payload=1)
    agent.flush()
    assert list(joins.messages(store)["status"]) == ["unobserved"]


def test_receive_never_pairs_with_a_later_send(store):
    agent = FakeAgent(store)
    agent.event("receive", B, payload=1)
    agent.event("send", A, B, payload=1)
    agent.flush()
    table = joins.messages(store)
    assert table.loc[table["send_seq"].notna(), "status"].tolist() == ["in_flight"]


def test_calls_pair_nested_and_unfinished(store):
    agent = FakeAgent(store)
    fact = (Atom("m"), Atom("fact"), 1)
    agent.event("call", A, mfa=fact, payload=[2])
    agent.event("call", A, mfa=fact, payload=[1])
    agent.event("return", A, mfa=fact, payload=1)
    agent.event("return", A, mfa=fact, payload=2)
    agent.event("call", A, mfa=(Atom("m"), Atom("boom"), 0), payload=[])
    agent.event("exception", A, mfa=(Atom("m"), Atom("boom"), 0),
                payload=(Atom("error"), Atom("badarith")))
    agent.event("call", B, mfa=fact, payload=[9])
    agent.flush()
    calls = joins.calls(store)
    assert list(calls["mfa"]) == [":m.fact/1", ":m.fact/1", ":m.boom/0", ":m.fact/1"]
    assert list(calls["depth"]) == [0, 1, 0, 0]
    assert list(calls["result"][:2]) == [2, 1]
    assert calls["exception"].iloc[2] == (Atom("error"), Atom("badarith"))
    assert list(calls["status"]) == ["returned", "returned", "raised", "running"]
    assert calls["duration_us"].iloc[0] == pytest.approx(3.0)


def test_state_events_unwrap_callbacks(store):
    agent = FakeAgent(store)
    call = (Atom("$gen_call"), (A, Atom("tag")), Atom("get"))
    gs = Atom("gen_server")
    agent.event("state", B, payload=(call, {Atom("n"): 1}, {Atom("n"): 1}, (Atom("reply"), 1), gs),
                aux=5000)
    agent.event("state", B, payload=((Atom("$gen_cast"), Atom("inc")), {Atom("n"): 1},
                                     {Atom("n"): 2}, Atom("noreply"), gs))
    # A gen_server that gets an info message shaped like a gen_statem event.
    agent.event("state", B, payload=((Atom("info"), 1), {}, {}, Atom("noreply"), gs))
    agent.flush()
    states = joins.states(store)
    assert list(states["callback"]) == ["handle_call", "handle_cast", "handle_info"]
    assert list(states["message"]) == [Atom("get"), Atom("inc"), (Atom("info"), 1)]
    assert list(states["reply"]) == [1, None, None]
    assert list(states["changed"]) == [False, True, False]
    assert states["duration_us"].iloc[0] == 5.0


def test_spills_to_disk_past_the_memory_budget(tmp_path):
    store = EventStore(memory_budget=20_000, spill_dir=tmp_path)
    agent = FakeAgent(store)
    for batch in range(10):
        for i in range(50):
            agent.event("send", A, B, payload={Atom("i"): batch * 50 + i, Atom("pad"): "x" * 40})
        agent.flush()
    assert store.spilled_chunks > 0
    assert store.memory_bytes <= 20_000
    assert any(tmp_path.iterdir())
    frame = store.frame()
    assert len(frame) == 500
    assert [t[Atom("i")] for t in frame["term"]] == list(range(500))


def test_raw_bytes_per_event_of_a_typical_message(store):
    agent = FakeAgent(store)
    for i in range(1000):
        agent.event("send", A, B, payload=(Atom("update"), i))
    agent.flush()
    assert store.memory_bytes / len(store) < 80  # 40-byte header + ~20-byte payload + 8-byte ts


def test_erlang_syntax_rerenders(store):
    agent = FakeAgent(store, names=[(A, Atom("Elixir.Demo.WorkerA"))])
    agent.event("send", A, B, payload={Atom("count"): 1})
    agent.flush()
    assert store.frame()["text"].iloc[0] == "%{count: 1}"
    store.set_syntax("erlang")
    frame = store.frame()
    assert frame["text"].iloc[0] == "#{count => 1}"
    assert frame["name"].iloc[0] == "Elixir.Demo.WorkerA"
    with pytest.raises(ValueError, match="syntax must be"):
        store.set_syntax("lisp")


def test_start_details_that_follow_are_waited_for_and_fold_monitors(store):
    """A trace's names and relations may come after its start: readers wait for
    them; a monitor reported by both sides (monitor and monitored_by) is one."""
    import threading

    store.add_source("late", "demo@host", OFFSET, 10**9, details_follow=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.append(store.initial_relations))
    reader.start()
    reader.join(0.2)
    assert reader.is_alive() and not seen     # waiting, not answering without them
    store.add_details("late", [(A, Atom("Elixir.Demo.WorkerA"))],
                      [(A, Atom("link"), B), (B, Atom("link"), A), (A, Atom("monitor"), C),
                       (C, Atom("monitored_by"), A)], [])
    reader.join(5)
    ids = {store.id_text(h) + " " + r + " " + store.id_text(p) for h, r, p in seen[0]}
    assert ids == {"<0.100.0> link <0.101.0>", "<0.101.0> link <0.100.0>",
                   "<0.100.0> monitor <0.103.0>"}
    assert [name for _, _, name in store.initial_names] == ["Demo.WorkerA"]


def test_details_that_never_come_release_readers(store):
    store.add_source("gone", "demo@host", OFFSET, 10**9, details_follow=True)
    store.details_lost("gone")
    assert store.initial_relations == [] and store.initial_procs == set()


@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=1, max_size=8),
       st.lists(st.integers(0, 7), min_size=1, max_size=40))
def test_a_text_column_is_what_pandas_makes_of_the_same_strings(texts, picks):
    """The events frame's pid, peer, mfa and name columns are built through
    text_column; each must equal, dtype and missing values included, the
    column pandas builds from the same Python strings."""
    from microscope_jupyter.store.frame import text_column

    texts = np.array(texts, dtype=object)
    codes = np.array([p % len(texts) for p in picks], dtype=np.int64)
    built, expected = pd.Series(text_column(texts, codes)), pd.Series(texts[codes])
    assert built.dtype == expected.dtype
    assert built.equals(expected)
