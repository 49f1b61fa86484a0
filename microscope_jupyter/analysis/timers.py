"""Timers that multiply: a process receives its own timer message ever more
often, because a code path arms another timer without cancelling the one
already running (a heartbeat re-armed in handle_info and armed again on
every reconnect).

    timer_leaks(facts)   # [Cause("timer_leak", ...)]

A timer's message (``erlang:send_after``, ``erlang:start_timer``, ``:timer``)
has no sender in the trace: it is a receive no traced send explains. One
message, the same bytes every time, arriving at a rate that climbs quarter
after quarter of the recording, is a timer armed more often than it fires
its last. The message the process handled just before each step up, when
one does so consistently, is the path that arms the extra timer. Only small
payloads are looked at (a timer's message is a tag): nothing is decoded but
the few shown.
"""

from __future__ import annotations

import numpy as np

from ..render.elixir import render
from ..render.names import known_as
from ..store.otp import message_shape
from ..store.schema import KIND_CODES
from .detector_kit import Cause
from .facts import Facts
from .replies import leading_bytes

__all__ = ["timer_leaks"]

_SEND, _RECEIVE = KIND_CODES["send"], KIND_CODES["receive"]
_SMALL = 24              # bytes: a timer's message is a tag, not a payload
MIN_ARRIVALS = 30
GROWTH = 2.0             # the last quarter's arrivals over the first's, at least
HORIZON_NS = 2_000_000_000   # the longest timer period looked for
MIN_PERIOD_NS = 5_000_000    # and the shortest


def _keys(raw, rows: np.ndarray) -> np.ndarray:
    """One int64 per small payload: equal bytes, equal keys."""
    head = leading_bytes(raw, rows, _SMALL).view("<u8").astype(np.uint64)
    key = raw.pay_len[rows].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for column in range(head.shape[1]):
        key = (key ^ head[:, column]) * np.uint64(0x100000001B3)
    return key.view(np.int64)


def timer_leaks(facts: Facts) -> list[Cause]:
    raw = facts.store.raw()
    small = raw.pay_len <= _SMALL
    recvs = np.flatnonzero((raw.kind == _RECEIVE) & small)
    if len(recvs) < MIN_ARRIVALS:
        return []
    sends = np.flatnonzero((raw.kind == _SEND) & small)
    recv_keys = _keys(raw, recvs)
    unsent = ~np.isin(recv_keys, _keys(raw, sends))
    recvs, recv_keys = recvs[unsent], recv_keys[unsent]
    if len(recvs) < MIN_ARRIVALS:
        return []
    spans = facts.store.recording_spans()
    groups = np.unique(np.stack([raw.pid[recvs].astype(np.int64), recv_keys]), axis=1,
                       return_inverse=True)[1].ravel()
    out = []
    for g in np.unique(groups).tolist():
        seqs = recvs[groups == g]
        if len(seqs) < MIN_ARRIVALS:
            continue
        ts = raw.ts_ns[seqs].astype(np.int64)
        lo, hi = next(((a, b) for a, b in spans if a <= ts[0] <= b), (int(ts[0]), int(ts[-1])))
        quarters = np.histogram(ts, bins=4, range=(lo, max(hi, lo + 1)))[0]
        if quarters[0] < 2 or (np.diff(quarters) <= 0).any() or \
                quarters[-1] < GROWTH * quarters[0]:
            continue
        out.append(_cause(facts, seqs, ts, quarters, (hi - lo) / 4e9))
    return out


def _cause(facts: Facts, seqs: np.ndarray, ts: np.ndarray, quarters: np.ndarray,
           quarter_s: float) -> Cause:
    raw, syntax = facts.store.raw(), facts.store.syntax
    gid = int(raw.pid[seqs[0]])
    name = next((n for _, n in reversed(facts.store.names().spans(gid)) if n), None)
    who = known_as(name, facts.store.id_text(gid) or "?")
    message = render(raw.term(int(seqs[0])), syntax, 60)
    rates = quarters / max(quarter_s, 1e-3)
    counts = ", ".join(str(int(n)) for n in quarters)
    summary = (f"{who} receives {message} ever more often: {counts} times in successive "
               f"quarters of the recording ({rates[0]:.0f}/s rising to {rates[-1]:.0f}/s), "
               "with no sender in the recording: the message of a timer it arms itself "
               f"(erlang:send_after, erlang:start_timer or :timer). Each {message} re-arms its "
               "timer, and more timers are being armed without cancelling the ones already "
               "running, so the timer chains multiply and the work each one triggers with them.")
    trigger = _trigger(facts, gid, ts, raw.term(int(seqs[0])))
    if trigger:
        summary += " " + trigger
    summary += (" Keep the timer's ref and erlang:cancel_timer it before arming another (or "
                "arm it in one place only). s.trace(modules=[\"erlang:send_after/3\", "
                "\"erlang:cancel_timer/1\"]) shows every timer armed and cancelled.")
    evidence = [int(s) for s in seqs[:5]] + [int(s) for s in seqs[-5:]]
    return Cause("timer_leak", 0.75, summary, sorted(set(evidence)), [who])


def _trigger(facts: Facts, gid: int, ts: np.ndarray, timer_message) -> str:
    """How many timers run (arrivals per period: each running timer fires once
    in any window one period long), and the message after whose handling one
    more runs, each time: the path that arms another."""
    period = _period(ts)
    if period is None:
        return ""
    shifts = np.arange(4) * period // 4      # a median over a period: no arrival on the edge
    running = (np.median(_running(ts, ts[0] + period + shifts, period)),
               np.median(_running(ts, ts[-1] - shifts, period)))
    text = (f"It fires about every {period / 1e6:.0f} ms, and {int(running[-1])} of these "
            f"timers were running at the end against {int(running[0])} at the start.")
    tt = facts.history()
    by_gid = facts.cached("processes by id", lambda: {p.gid: p for p in tt.processes()})
    proc = by_gid.get(gid)
    if proc is None or not proc.state_seqs:
        return text
    timer_shape = message_shape(timer_message)
    when: dict[str, list[int]] = {}
    for k in range(min(len(proc.state_seqs), 5000)):
        shape = message_shape(proc.states[k]["message"])
        if shape != timer_shape:
            when.setdefault(shape, []).append(int(proc.state_ts_in[k]))
    best = None
    for shape, times in when.items():
        found = _steps_up(np.array(times, dtype=np.int64), ts, period)
        if found is not None and (best is None or found[0] > best[1]):
            best = (shape, *found)
    if best is not None:
        shape, up, n = best
        text += (f" One more was running after each {shape} it handled ({up} of {n} times): "
                 "that path arms another timer while the old one keeps running.")
    return text


def _period(ts: np.ndarray) -> int | None:
    """The timer's period (ns): the gap that follows nearly every arrival, to
    the next firing of the same timer (the most common gap between arrivals
    within a few seconds, at 1 ms, past the first few)."""
    gaps = []
    for t in ts[:300].tolist():
        lo, hi = np.searchsorted(ts, [t + MIN_PERIOD_NS, t + HORIZON_NS])
        gaps.append(ts[lo:hi] - t)
    every = np.concatenate(gaps) // 1_000_000 if gaps else np.zeros(0, dtype=np.int64)
    if not len(every):
        return None
    counts = np.bincount(every)
    near = np.convolve(counts, [1, 1, 1], mode="same")     # +-1 ms
    best = int(near.argmax())
    if near[best] < 0.5 * min(len(ts), 300):
        return None
    return int(np.average(np.arange(best - 1, best + 2),
                          weights=counts[best - 1:best + 2] + 1e-9) * 1_000_000 + 500_000)


def _running(ts: np.ndarray, at: np.ndarray, period: int) -> np.ndarray:
    """Timers running at each of ``at``: arrivals in the period before it."""
    return np.searchsorted(ts, at, side="right") - np.searchsorted(ts, at - period, side="right")


def _steps_up(times: np.ndarray, ts: np.ndarray, period: int) -> tuple[int, int] | None:
    """(times, of how many) one more timer ran a period after ``times`` than
    before them, over windows that fit between two of them."""
    times = times[(times - period >= ts[0]) & (times + 2 * period <= ts[-1])]
    if len(times) > 1:
        spaced = np.r_[np.diff(times) > 2 * period, True]
        times = times[spaced]
    if len(times) < 3:
        return None
    shifts = np.arange(4) * period // 4
    before = np.median([_running(ts, times - d, period) for d in shifts], axis=0)
    after = np.median([_running(ts, times + period + period // 8 + d, period)
                       for d in shifts], axis=0)
    up = int((after > before).sum())
    return (up, len(times)) if up >= 0.75 * len(times) else None
