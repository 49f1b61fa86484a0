"""What processes cost the node, named with the work in hand."""

from __future__ import annotations

from fake_agent import A, B, C, MS, FakeAgent
from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore
from microscope_jupyter.store.schema import FLAG_TRUNCATED

GS = Atom("gen_server")
TRUNCATED = Atom("$microscope_truncated")
NAMES = [(A, Atom("Elixir.Shop.Dispatch")), (B, Atom("Elixir.Shop.Worker")),
         (C, Atom("Elixir.Shop.Index"))]


def recording(build) -> OfflineSession:
    store = EventStore()
    agent = FakeAgent(store, names=NAMES)
    build(agent)
    agent.flush()
    return OfflineSession(store, {}, None)


def sends(agent, n: int, size: int) -> None:
    for k in range(n):
        agent.event("send", A, peer=B, payload=(TRUNCATED, size), flags=FLAG_TRUNCATED,
                    ts=(10 + 100 * k) * MS)


def kinds(s) -> list[str]:
    return list(s.explain().causes["kind"])


def test_big_messages_sent_again_and_again_are_a_copy_per_send():
    s = recording(lambda agent: sends(agent, 8, 300_000))
    cause = s.explain().causes.iloc[0]
    assert cause["kind"] == "large_messages"
    assert cause["summary"].startswith("Shop.Dispatch sent 8 messages of about 293 KB each")
    assert "copies the whole term into the receiver's heap" in cause["summary"]
    assert cause["processes"][:2] == ["Shop.Dispatch", "Shop.Worker"]


def test_a_few_big_messages_or_many_middling_ones_are_no_cause():
    assert "large_messages" not in kinds(recording(lambda agent: sends(agent, 3, 300_000)))
    assert "large_messages" not in kinds(recording(lambda agent: sends(agent, 50, 9_000)))


def test_a_long_schedule_is_tied_to_the_callback_in_hand():
    def build(agent):
        info = [(Atom("timeout"), 140), (Atom("in"), Atom("undefined"))]
        for k in range(3):
            t = (100 + 500 * k) * MS
            agent.event("long_schedule", C, payload=info, aux=140, ts=t)   # ms, as the agent sends it
            agent.event("state", C, payload=(Atom("checkpoint"), 1, 1, Atom("noreply"), GS),
                        aux=300 * MS, ts=t + 200 * MS)
        agent.event("state", C, payload=((Atom("$gen_cast"), (Atom("touch"), 1)), 1, 1,
                                         Atom("noreply"), GS), aux=10_000, ts=1900 * MS)

    cause = recording(build).explain().causes.iloc[0]
    assert cause["kind"] == "long_schedule"
    assert cause["summary"].startswith("Shop.Index ran up to 140 ms without yielding its "
                                       "scheduler 3 times (the node's system monitor), each "
                                       "time inside handle_info of :checkpoint")


def atoms(agent, values) -> None:
    mfa = (Atom("erlang"), Atom("binary_to_atom"), 2)
    for k, value in enumerate(values):
        agent.event("call", A, mfa=mfa, payload=[value.encode(), Atom("utf8")],
                    ts=(10 + 5 * k) * MS)
        agent.event("return", A, mfa=mfa, payload=Atom(value), ts=(11 + 5 * k) * MS)


def test_atoms_made_from_data_that_keep_coming_are_a_leak():
    s = recording(lambda agent: atoms(agent, [f"id-{k:x}" for k in range(120)]))
    cause = s.explain().causes.iloc[0]
    assert cause["kind"] == "atom_growth"
    assert cause["summary"].startswith("Shop.Dispatch made 120 distinct atoms from data with "
                                       "erlang:binary_to_atom/2")


def test_a_fixed_vocabulary_of_atoms_is_no_leak():
    # a few dozen field names, over and over: every atom exists after the first pass
    vocabulary = [f"field_{k}" for k in range(60)]
    s = recording(lambda agent: atoms(agent, vocabulary + vocabulary * 3))
    assert "atom_growth" not in kinds(s)


def binaries(agent, held: list[int], heap_words: int = 2_000) -> None:
    """The sampler's readings of C's refc binary bytes, one a second, with its
    state events in between (each a handled packet)."""
    packet = (Atom("$gen_cast"), (Atom("packet"), b"x" * 8))
    for k, size in enumerate(held):
        t = (100 + 1000 * k) * MS
        agent.event("state", C, payload=(packet, 1, 1, Atom("noreply"), GS), aux=50_000,
                    ts=t - 10 * MS)
        agent.event("vitals", C, aux=heap_words * 8 + 3_000, ts=t,
                    payload={Atom("memory"): heap_words * 8 + 3_000,
                             Atom("heap_words"): heap_words, Atom("reductions"): 1_000 * k,
                             Atom("binary_bytes"): size})


def test_refc_binaries_that_climb_while_the_heap_stays_small_are_kept_alive():
    s = recording(lambda agent: binaries(agent, [400_000, 1_300_000, 2_200_000, 3_100_000]))
    cause = s.explain().causes.iloc[0]
    assert cause["kind"] == "refc_binary"
    assert cause["summary"].startswith(
        "Shop.Index keeps refc binaries alive: the binaries it references grew from 391 KB to "
        "3.0 MB in 3.0 s (about 879 KB a second; the node's own process_info(binary), read 4 "
        "times) and were never let go of, while its own heap is 16 KB; it handled 4 "
        "handle_cast of {:packet, _}")
    assert "binary:copy/1" in cause["summary"]
    assert cause["processes"] == ["Shop.Index"]


def test_binaries_let_go_of_at_a_collection_or_dwarfed_by_the_heap_are_no_hoard():
    # a pipeline stage: its binaries pile up between collections, then go
    sawtooth = [400_000, 2_000_000, 3_600_000, 300_000, 2_500_000]
    assert "refc_binary" not in kinds(recording(lambda agent: binaries(agent, sawtooth)))
    # a big heap that also holds binaries: a large state, not binaries kept alive
    climbing = [400_000, 1_300_000, 2_200_000, 3_100_000]
    assert "refc_binary" not in kinds(recording(
        lambda agent: binaries(agent, climbing, heap_words=1_000_000)))
    # a steady amount, however large: nothing climbs
    steady = [9_000_000] * 4
    assert "refc_binary" not in kinds(recording(lambda agent: binaries(agent, steady)))
