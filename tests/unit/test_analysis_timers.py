"""Timers that multiply (analysis/timers.py)."""

from __future__ import annotations

from fake_agent import MS, NODE, FakeAgent
from microscope_jupyter.analysis.timers import timer_leaks
from microscope_jupyter.beam.terms import Atom, Pid
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore

CONN = Pid(Atom(NODE), 800, 0, 7)
UPSTREAM = Pid(Atom(NODE), 801, 0, 7)
GS, NOREPLY, BEAT = Atom("gen_server"), Atom("noreply"), Atom("heartbeat")


def _session(chains_added_on_reconnect: bool) -> OfflineSession:
    """A heartbeat every 100 ms per running chain, for 4 s; a reconnect every 500 ms
    that, in the bug, starts one more chain."""
    store = EventStore()
    agent = FakeAgent(store, names=[(CONN, Atom("conn")), (UPSTREAM, Atom("upstream"))])
    events = []
    for c in range(8 if chains_added_on_reconnect else 1):
        start = 500 * c + 7 * c              # chain c starts at the c-th reconnect
        events += [(t, "beat") for t in range(start + 100, 4000, 100)]
    events += [(500 * k + 7 * k - 1, "reconnect") for k in range(1, 8)]
    n = 0
    for t, what in sorted(events):
        if what == "beat":
            agent.event("receive", CONN, payload=BEAT, ts=t * MS)
            agent.event("send", CONN, UPSTREAM, payload=(Atom("$gen_cast"), Atom("ping")),
                        ts=t * MS + 1000)
            agent.event("state", CONN, payload=(BEAT, n, n + 1, NOREPLY, GS), aux=5000,
                        ts=t * MS + 2000)
        else:
            closed = (Atom("session_closed"), n)
            agent.event("send", UPSTREAM, CONN, payload=closed, ts=t * MS)
            agent.event("receive", CONN, payload=closed, ts=t * MS + 500)
            agent.event("state", CONN, payload=(closed, n, n + 1, NOREPLY, GS), aux=5000,
                        ts=t * MS + 3000)
        n += 1
    agent.event("mailbox", CONN, aux=0, ts=0)
    agent.event("mailbox", CONN, aux=0, ts=4000 * MS)
    agent.flush()
    return OfflineSession(store, {}, None)


def test_a_timer_armed_again_on_every_reconnect():
    causes = timer_leaks(_session(chains_added_on_reconnect=True).facts)
    assert [c.kind for c in causes] == ["timer_leak"]
    text = causes[0].summary
    assert text.startswith("conn receives :heartbeat ever more often:")
    assert "with no sender in the recording" in text and "without cancelling" in text
    assert "One more was running after each {:session_closed, _} it handled (7 of 7 times)" in text
    assert "8 of these timers were running at the end against 1 at the start" in text
    assert 'erlang:send_after/3' in text


def test_a_steady_heartbeat_is_no_finding():
    assert timer_leaks(_session(chains_added_on_reconnect=False).facts) == []
