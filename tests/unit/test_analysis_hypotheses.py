"""Hypotheses: confirmed by a cause the recording holds, open with the trace
that would decide them, ruled out once that trace ran and showed nothing."""

from __future__ import annotations

from fake_agent import A, MS, FakeAgent, tally
from microscope_jupyter.analysis.hypotheses import hypotheses
from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore

NAMES = [(A, Atom("Elixir.Metrics.Ingest"))]
ATOMS_Q = "Why does the node's atom count keep rising?"


def recording(*builds) -> OfflineSession:
    store = EventStore()
    agent = FakeAgent(store, names=NAMES)
    for build in builds:
        build(agent)
    agent.flush()
    return OfflineSession(store, {}, None)


def atoms(agent, count: int = 120) -> None:
    mfa = (Atom("erlang"), Atom("binary_to_atom"), 2)
    for k in range(count):
        agent.event("call", A, mfa=mfa, payload=[f"id-{k:x}".encode(), Atom("utf8")],
                    ts=(10 + 5 * k) * MS)
        agent.event("return", A, mfa=mfa, payload=Atom(f"id-{k:x}"), ts=(11 + 5 * k) * MS)


def by_kind(found) -> dict:
    return {h.kind: h for h in found}


def test_a_question_the_default_trace_cannot_answer_gets_the_trace_that_would():
    s = recording(tally)
    found = by_kind(hypotheses(s.facts, ATOMS_Q))
    atom = found["atom_growth"]
    assert atom.status == "open"
    assert atom.probe.modules == ("erlang:binary_to_atom/2", "erlang:binary_to_atom/1",
                                  "erlang:list_to_atom/1")
    assert "which process makes atoms" in atom.probe.why
    # the best open hypothesis is the one the question names
    assert hypotheses(s.facts, ATOMS_Q)[0].kind == "atom_growth"
    race = by_kind(hypotheses(s.facts, "Why is the account balance lower than the deposits?"))
    assert race["ets_race"].probe.modules == ("ets:lookup/2", "ets:insert/2")
    assert "atom_growth" not in race       # nothing in that question points at atoms


def test_what_the_probe_records_confirms_it():
    s = recording(tally, atoms)
    best = hypotheses(s.facts, ATOMS_Q)[0]
    assert (best.kind, best.status) == ("atom_growth", "confirmed")
    assert best.claim.startswith("Metrics.Ingest made 120 distinct atoms from data")
    assert best.probe is None


def test_a_probe_that_ran_and_showed_nothing_rules_its_hypothesis_out():
    s = recording(tally)
    probe = by_kind(hypotheses(s.facts, ATOMS_Q))["atom_growth"].probe
    after = by_kind(hypotheses(s.facts, ATOMS_Q, tried=frozenset({probe.key})))
    assert after["atom_growth"].status == "ruled out"
    assert "no atom_growth" in after["atom_growth"].evidence
    # ruled out ones come last
    assert hypotheses(s.facts, ATOMS_Q, tried=frozenset({probe.key}))[-1].kind == "atom_growth"


def test_a_question_with_no_deeper_trace_to_try_proposes_nothing_new():
    s = recording(tally)
    assert all(h.probe is None or h.kind == "more"
               for h in hypotheses(s.facts, "Why did the reply come late?"))
