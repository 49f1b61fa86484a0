"""A question steers the answer: its processes, its symptom and its moment first."""

from __future__ import annotations

import pandas as pd

from fake_agent import A, B, C, MS, FakeAgent
from microscope_jupyter.analysis.question import read_question
from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore

GS = Atom("gen_server")
NAMES = [(A, Atom("Elixir.Shop.Cart")), (B, Atom("Elixir.Shop.Stock")), (C, Atom("Elixir.Shop.Mail"))]


def two_troubles() -> OfflineSession:
    """Shop.Stock crashes early (at 10 ms); Shop.Cart's state grows steadily
    later; Shop.Mail is quiet and well."""
    store = EventStore()
    agent = FakeAgent(store, names=NAMES)
    agent.event("send", C, peer=C, payload=Atom("tick"), ts=1 * MS)
    agent.event("receive", C, payload=Atom("tick"), ts=2 * MS)
    agent.event("state", C, payload=(Atom("tick"), 0, 1, Atom("noreply"), GS), aux=10_000,
                ts=3 * MS)
    agent.event("exit", B, payload=(Atom("badarith"), []), ts=10 * MS)
    cache: dict = {}
    for n in range(60):
        before = dict(cache)
        cache[Atom(f"k{n}")] = n
        agent.event("state", A, payload=((Atom("$gen_cast"), (Atom("put"), n)), before,
                                         dict(cache), Atom("noreply"), GS),
                    aux=5_000, ts=(100 + 10 * n) * MS)
    agent.flush()
    return OfflineSession(store, {}, None)


def test_a_question_is_read_for_processes_symptoms_and_a_moment():
    s = two_troubles()
    day = pd.Timestamp(int(s.store.raw().ts_ns.min()), tz="UTC").normalize()
    q = read_question(s.facts, "Why does Cart keep growing since 10:32:05, and is Shop.Mail slow?")
    assert q.processes == {"Shop.Cart", "Shop.Mail"}
    assert q.symptoms == {"growing", "slow"}
    assert q.moment_ns == (day + pd.Timedelta("10:32:05")).value
    assert not read_question(s.facts, "What happened here?")


def test_questions_about_different_processes_get_different_answers():
    s = two_troubles()
    growing = s.explain("Why does Shop.Cart keep growing?")
    crashed = s.explain("Why did Shop.Stock crash?")
    assert growing.causes["kind"].iloc[0] == "state_growth"
    assert crashed.causes["kind"].iloc[0] != "state_growth"
    assert "Shop.Stock" in crashed.causes["processes"].iloc[0]
    assert growing.text != crashed.text
    assert growing.text.startswith("The state of Shop.Cart")


def test_the_symptom_asked_about_comes_first_without_a_name():
    s = two_troubles()
    assert s.explain("What keeps growing?").causes["kind"].iloc[0] == "state_growth"
    assert s.explain("What crashed?").causes["kind"].iloc[0] != "state_growth"


def test_a_process_no_cause_involves_is_said_to_look_healthy_with_its_evidence():
    s = two_troubles()
    text = s.explain("Is Shop.Mail slow?").text
    assert text.startswith("Shop.Mail looks healthy in this recording: it received 1 "
                           "message(s), handled 1 callback(s), the slowest in 0.0 ms"), text
    assert "What the recording does show:" in text
    # a process that crashed is never called healthy
    assert "Shop.Stock looks healthy" not in s.explain("Is Shop.Stock slow?").text


def test_a_symptom_no_cause_shows_for_a_named_process_is_said_not_to_show():
    s = two_troubles()
    text = s.explain("Why is Shop.Cart so slow?").text
    assert text.startswith("Nothing in the recording shows Shop.Cart slow:"), text
