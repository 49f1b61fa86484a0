"""gen_statem misuse from hand-built transitions: a state_timeout taken for an
idle timeout, and calls postponed in a state never left (analysis/statem.py)."""

from __future__ import annotations

from fake_agent import MS, NODE, FakeAgent
from microscope_jupyter.analysis.statem import postponed_calls, statem_timeouts
from microscope_jupyter.beam.terms import Atom, ImproperList, Pid, Reference
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore
from microscope_jupyter.store.schema import KIND_CODES

CONN = Pid(Atom(NODE), 300, 0, 7)
CLIENT = Pid(Atom(NODE), 301, 0, 7)
STATEM, NOREPLY = Atom("gen_statem"), Atom("noreply")
_tags = iter(range(1, 10**6))


def _tag():
    return ImproperList((Atom("alias"),), Reference(Atom(NODE), 7, (next(_tags), 2, 3)))


def _session(build) -> OfflineSession:
    store = EventStore()
    agent = FakeAgent(store, names=[(CONN, Atom("conn")), (CLIENT, Atom("client"))])
    build(agent)
    agent.flush()
    return OfflineSession(store, {}, None)


def _step(agent, t, etype, content, before, after, reply=NOREPLY):
    agent.event("state", CONN, payload=((etype, content), Atom(before), Atom(after), reply,
                                        STATEM), aux=10_000, ts=t)


def _served(agent, t, state, caller=CLIENT):
    """A call received and answered in ``state`` (keep_state)."""
    tag = _tag()
    call = (Atom("$gen_call"), (caller, tag), (Atom("query"), t))
    agent.event("send", caller, CONN, payload=call, ts=t)
    agent.event("receive", CONN, payload=call, ts=t + 1000)
    agent.event("send", CONN, caller, payload=(tag, Atom("ok")), ts=t + 20_000)
    _step(agent, t + 30_000, (Atom("call"), (caller, tag)), (Atom("query"), t), state, state)
    agent.event("receive", caller, payload=(tag, Atom("ok")), ts=t + 40_000)


def _flapping(busy_until_ms: int, late: bool = False):
    """connected for 500 ms after each connect (its state_timeout :idle), calls every
    20 ms while connected until ``busy_until_ms`` into each visit; 100 ms disconnected
    (state_timeout :reconnect), calls answered there too. ``late``: one more call
    arrives just before each idle timeout, taken right after it, in disconnected."""
    def build(agent):
        t = 0
        for _ in range(5):
            _step(agent, t * MS, Atom("state_timeout"), Atom("reconnect"), "disconnected",
                  "connected")
            for k in range(1, busy_until_ms // 20):
                _served(agent, (t + 20 * k) * MS, "connected")
            if late:
                tag = _tag()
                call = (Atom("$gen_call"), (CLIENT, tag), Atom("late"))
                agent.event("receive", CONN, payload=call, ts=(t + 500) * MS - 100_000)
            _step(agent, (t + 500) * MS, Atom("state_timeout"), Atom("idle"), "connected",
                  "disconnected")
            if late:
                _step(agent, (t + 500) * MS + 200_000, (Atom("call"), (CLIENT, tag)),
                      Atom("late"), "disconnected", "disconnected")
            for k in range(1, 5):
                _served(agent, (t + 500 + 20 * k) * MS, "disconnected")
            t += 600
    return build


def test_a_state_timeout_that_traffic_never_resets():
    causes = statem_timeouts(_session(_flapping(busy_until_ms=500)).facts)
    assert [c.kind for c in causes] == ["statem_timeout"]   # not the backoff state's
    text = causes[0].summary
    assert text.startswith("conn left the state :connected on its state_timeout :idle 5 times")
    assert "each time 500 ms after entering it" in text
    assert "do not reset it" in text and "event timeout" in text
    assert "in :disconnected for about 100 ms each time" in text
    assert causes[0].processes == ["conn"]


def test_a_real_idle_timeout_is_no_finding():
    # the requests stop 300 ms into each visit: it is idle when the timeout fires
    assert statem_timeouts(_session(_flapping(busy_until_ms=200)).facts) == []


def test_a_visit_left_by_a_postponed_call_is_no_finding():
    # {next_state, disconnected, D, [postpone]} makes no transition the hook sees:
    # the next one it reports (the reconnect's state_timeout, in disconnected)
    # reads as if connected were left on it. The call it postponed waits through
    # that change and the handshake's, which says so.
    def build(agent):
        t = 0
        for _ in range(5):
            _step(agent, t * MS, Atom("state_timeout"), Atom("handshake"), "connecting",
                  "connected")
            for k in range(1, 25):
                _served(agent, (t + 20 * k) * MS, "connected")
            tag = _tag()
            call = (Atom("$gen_call"), (CLIENT, tag), Atom("rotate"))
            agent.event("receive", CONN, payload=call, ts=(t + 495) * MS)
            _step(agent, (t + 500) * MS, Atom("state_timeout"), Atom("reconnect"), "connected",
                  "connecting")
            _step(agent, (t + 501) * MS, Atom("state_timeout"), Atom("handshake"), "connecting",
                  "connected")
            _step(agent, (t + 502) * MS, (Atom("call"), (CLIENT, tag)), Atom("rotate"),
                  "connected", "connected")
            t += 505
    assert statem_timeouts(_session(build).facts) == []


def test_a_call_queued_behind_the_timeout_still_counts():
    # busier: a call arrives just before each idle timeout and is taken right
    # after it, in disconnected (one state change): the visit's end is sure
    causes = statem_timeouts(_session(_flapping(busy_until_ms=500, late=True)).facts)
    assert [c.kind for c in causes] == ["statem_timeout"]


POSTPONED = (Atom("statem"), Atom("postpone"), True, [])   # what the hook reports for one


def _jam(agent, then_leave: bool, postpones_seen: bool = False):
    proxies = [Pid(Atom(NODE), 400 + n, 0, 7) for n in range(6)]
    _step(agent, 10 * MS, Atom("info"), (Atom("hw"), Atom("jam")), "printing", "jammed")
    for n, proxy in enumerate(proxies):
        t = (50 + 100 * n) * MS
        call = (Atom("$gen_call"), (proxy, _tag()), (Atom("print"), n))
        agent.event("send", proxy, CONN, payload=call, ts=t)
        agent.event("receive", CONN, payload=call, ts=t + 1000)
        if postpones_seen and n > 0:     # the hook reports each postpone (agent v31+)
            _step(agent, t + 2 * MS, (Atom("call"), call[1]), call[2], "jammed", "jammed",
                  reply=POSTPONED)
        if not then_leave:
            agent.event("timeout", proxy, ts=t + 1000 * MS)      # its call gave up
        else:
            _step(agent, t + 5 * MS, (Atom("call"), call[1]), call[2], "ready", "ready")
            agent.event("send", CONN, proxy, payload=(call[1][1], Atom("ok")), ts=t + 6 * MS)
        if n == 0:
            _step(agent, t + 2 * MS, Atom("info"), (Atom("hw"), Atom("online")), "jammed",
                  "ready" if then_leave else "jammed")
    for k in range(20):
        agent.event("mailbox", CONN, aux=0, ts=(100 + 100 * k) * MS)


def test_calls_postponed_in_a_state_never_left():
    causes = postponed_calls(_session(lambda a: _jam(a, then_leave=False)).facts)
    assert [c.kind for c in causes] == ["postponed_calls"]
    text = causes[0].summary
    assert text.startswith("conn stayed in the state :jammed from seq 0")
    assert "6 calls (6 {:print, _})" in text and "postponed them" in text
    assert "the node's own count of its queue stayed at 0" in text
    assert "6 of their callers gave up at their call timeout" in text
    assert "{:hw, :online}" in text and "never changed" in text


def test_a_postpone_the_hook_reports_is_no_handling_of_the_call():
    causes = postponed_calls(_session(lambda a: _jam(a, then_leave=False,
                                                     postpones_seen=True)).facts)
    assert [c.kind for c in causes] == ["postponed_calls"]
    assert "6 calls (6 {:print, _})" in causes[0].summary


def test_calls_postponed_until_the_state_changes_are_no_finding():
    assert postponed_calls(_session(lambda a: _jam(a, then_leave=True)).facts) == []


def test_calls_held_briefly_with_no_caller_giving_up_are_no_finding():
    # a reconnect in progress: six calls held 0.5 s, none of their callers gave up
    def build(agent):
        _jam(agent, then_leave=False)
        agent.rows = [r for r in agent.rows if r[0] != KIND_CODES["timeout"]]
    assert postponed_calls(_session(build).facts) == []
