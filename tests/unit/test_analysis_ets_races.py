"""Read-modify-write races on ETS, from call traces of ets:lookup/2 and
ets:insert/2 (analysis/ets_races.py)."""

from __future__ import annotations

from fake_agent import MS, NODE, FakeAgent
from microscope_jupyter.analysis.ets_races import ets_races
from microscope_jupyter.beam.terms import Atom, Pid
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore

T1, T2 = Pid(Atom(NODE), 950, 0, 7), Pid(Atom(NODE), 951, 0, 7)
TABLE, KEY = Atom("accounts"), "acct-7"
LOOKUP, INSERT = (Atom("ets"), Atom("lookup"), 2), (Atom("ets"), Atom("insert"), 2)


def _session(build) -> OfflineSession:
    store = EventStore()
    agent = FakeAgent(store, names=[(T1, Atom("teller_1")), (T2, Atom("teller_2"))])
    build(agent)
    agent.flush()
    return OfflineSession(store, {}, None)


def _lookup(agent, who, t, found):
    agent.event("call", who, mfa=LOOKUP, payload=[TABLE, KEY], ts=t)
    agent.event("return", who, mfa=LOOKUP, payload=[(KEY, found)] if found is not None else [],
                ts=t + 1000)


def _insert(agent, who, t, value):
    agent.event("call", who, mfa=INSERT, payload=[TABLE, (KEY, value)], ts=t)
    agent.event("return", who, mfa=INSERT, payload=True, ts=t + 1000)


def _deposits(interleaved: bool):
    """Two tellers add 1 to the balance 20 times each: lookup, +1, insert, 40 us
    apart. Interleaved, both read the same balance and one deposit is lost each
    time; else one teller goes after the other."""
    def build(agent):
        balance, t = 0, 0
        for _ in range(20):
            if interleaved:
                _lookup(agent, T1, t, balance)
                _lookup(agent, T2, t + 10_000, balance)
                _insert(agent, T2, t + 40_000, balance + 1)
                _insert(agent, T1, t + 50_000, balance + 1)
                balance += 1
            else:
                for k, who in enumerate((T1, T2)):
                    _lookup(agent, who, t + k * 60_000, balance)
                    _insert(agent, who, t + k * 60_000 + 40_000, balance + 1)
                    balance += 1
            t += MS
    return build


def test_lookup_then_insert_interleaved_is_a_race():
    causes = ets_races(_session(_deposits(interleaved=True)).facts)
    assert [c.kind for c in causes] == ["ets_race"]
    text = causes[0].summary
    assert text.startswith('Read-modify-write race on the key "acct-7" of the ETS table '
                           ':accounts: teller_1, teller_2 each read it with ets:lookup')
    assert "20 of those windows had another process's insert of the same key" in text
    assert "lost update" in text and "ets:update_counter/3" in text
    assert causes[0].confidence == 0.9


def test_a_writer_that_reads_back_what_others_wrote():
    # one teller traced; the other's writes only show in what it reads back
    def build(agent):
        balance, t = 0, 0
        for _ in range(12):
            _lookup(agent, T1, t, balance)
            _insert(agent, T1, t + 40_000, balance + 1)
            balance += 5                  # four deposits by processes outside the trace
            t += MS
    causes = ets_races(_session(build).facts)
    assert len(causes) == 1 and causes[0].confidence == 0.65
    assert "11 times it read back a value it had not written" in causes[0].summary
    assert "outside the recording" in causes[0].summary


def test_updates_one_after_the_other_are_no_race():
    assert ets_races(_session(_deposits(interleaved=False)).facts) == []


def test_an_insert_where_the_lookup_found_nothing_is_no_read_modify_write():
    def build(agent):
        for n in range(20):
            _lookup(agent, T1, n * MS, None)
            _lookup(agent, T2, n * MS + 10_000, None)
            _insert(agent, T2, n * MS + 40_000, n)
            _insert(agent, T1, n * MS + 50_000, n)
    assert ets_races(_session(build).facts) == []
