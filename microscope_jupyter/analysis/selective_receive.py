"""What a selective receive does to a mailbox: messages no clause takes pile
up, and a receive that must scan a long queue makes every callback slower.

    unmatched_messages(facts)   # [Cause("unmatched_messages", ...)]
    mailbox_scans(facts)        # [Cause("mailbox_scan", ...)]

- ``unmatched_messages``: a mailbox that grows, by the node's own samples,
  by just as many messages as one shape brought in, while the process keeps
  taking every other shape as it comes: no receive clause matches that
  shape, so those messages stay queued for good (and are walked past by
  every receive).
- ``mailbox_scans``: a GenServer whose callback durations rise and fall with
  its mailbox length, and that waits inside those callbacks for a message
  carrying no fresh reference: that receive cannot skip the old messages
  (the runtime skips them only for a reference made just before), so it
  scans the whole queue every time.

Both rest on the node's own queue samples; receives are grouped by their
leading bytes (tag and arity) and only a few are decoded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..beam.terms import ImproperList, Reference
from ..render.elixir import render
from ..render.names import known_as
from ..store.otp import message_shape
from .detector_kit import MAILBOX_GROWTH, Cause
from .facts import Facts
from .replies import leading_bytes

__all__ = ["unmatched_messages", "mailbox_scans"]

_HEAD = 24
MATCH = 0.15          # the queue's growth and one shape's arrivals agree within this share
MIN_SAMPLES = 4       # queue samples with callbacks around them, for a duration trend
SCAN_RHO = 0.8        # rank correlation of callback duration with queue length, at least
SCAN_SHARE = 0.5      # of the longest queue's callback time, what the queue's length explains
SCAN_RATIO = 1.5      # the longest queue's callback time over the shortest's, at least
SCAN_MIN_US = 20.0    # and the time the queue adds to a callback then
NEAR_NS = 50_000_000  # callbacks this close to a sample count for it


def _who(facts: Facts, proc) -> str:
    return known_as(proc.last_name(len(facts.store.raw())), proc.pid)


def _shape_keys(raw, rows: np.ndarray) -> list[bytes]:
    """A key per message that equal shapes share: a tuple's arity and its
    first element when that is an atom; else the leading bytes' type."""
    heads = leading_bytes(raw, rows, _HEAD)
    keys = []
    for head in (bytes(h) for h in heads):
        if head[1:2] == b"h" and head[3:4] in (b"w", b"s"):
            keys.append(head[1:5 + head[4]])
        elif head[1:2] == b"h" and head[3:4] in (b"v", b"d"):
            keys.append(head[1:6 + head[5]])
        elif head[1:2] in (b"w", b"s", b"v", b"d"):
            keys.append(head[1:])
        else:
            keys.append(head[1:3])
    return keys


# -- messages no clause takes -------------------------------------------------

def unmatched_messages(facts: Facts) -> list[Cause]:
    tt = facts.history()
    raw = tt.raw
    out = []
    for proc in tt.processes():
        seqs, level = proc.sampled()
        if len(level) < MIN_SAMPLES or int(level.max()) < MAILBOX_GROWTH:
            continue
        steps = np.diff(level)
        growth = int(level[-1] - level[0])
        # steadily up to the end: never giving back much of what it gained
        if growth < MAILBOX_GROWTH or -steps[steps < 0].sum() > 0.1 * steps[steps > 0].sum():
            continue
        if proc.exit_seq is not None:
            continue
        inside = proc.recv_seqs[(proc.recv_seqs > seqs[0]) & (proc.recv_seqs <= seqs[-1])]
        if not len(inside):
            continue
        keys = _shape_keys(raw, inside)
        counts: dict[bytes, int] = {}
        for k in keys:
            counts[k] = counts.get(k, 0) + 1
        piled = [k for k, n in counts.items() if abs(n - growth) <= MATCH * growth]
        if len(piled) != 1:
            continue
        key = piled[0]
        others = len(inside) - counts[key]
        if others < 0.2 * counts[key]:
            continue       # nothing else arrives: a stuck process, not an unmatched shape
        mine = inside[np.array([k == key for k in keys])]
        # the same in each half: it piles up all along, at the rate it arrives
        mid = int(seqs[len(seqs) // 2])
        first_half = int(level[len(seqs) // 2] - level[0])
        if abs(int((mine <= mid).sum()) - first_half) > max(MATCH * growth, 5):
            continue
        if proc.state_seqs and any(r in proc.handled_by_state for r in mine[:200].tolist()):
            continue       # callbacks take them: a backlog, told elsewhere
        out.append(_unmatched_cause(facts, proc, seqs, level, mine, inside, keys, key))
    return out


def _unmatched_cause(facts: Facts, proc, seqs: np.ndarray, level: np.ndarray,
                     mine: np.ndarray, inside: np.ndarray, keys: list, key: bytes) -> Cause:
    raw = facts.store.raw()
    who = _who(facts, proc)
    span_s = (int(raw.ts_ns[seqs[-1]]) - int(raw.ts_ns[seqs[0]])) / 1e9
    sample = raw.term(int(mine[0]))
    shape = message_shape(sample)
    first_of: dict[bytes, int] = {}
    count_of: dict[bytes, int] = {}
    for r, k in zip(inside.tolist(), keys):
        if k != key:
            first_of.setdefault(k, r)
            count_of[k] = count_of.get(k, 0) + 1
    taken: dict[str, int] = {}
    for k, r in first_of.items():       # one decoded per shape
        s = message_shape(raw.term(r))
        taken[s] = taken.get(s, 0) + count_of[k]
    growth = int(level[-1] - level[0])
    summary = (f"The mailbox of {who} grew from {int(level[0])} to {int(level[-1])} messages "
               f"(the node's own count) over {span_s:.1f} s: by {growth}, just as many as the "
               f"{len(mine)} {shape} messages that arrived meanwhile "
               f"({len(mine) / max(span_s, 1e-3):.0f}/s), while it kept taking the "
               f"{sum(taken.values())} others ({', '.join(list(taken)[:4])}) as they came. "
               f"Those {shape} messages are unmatched: no clause of its receive matches them, "
               "so they are never consumed, stay in the mailbox for good and are scanned past "
               "by every receive.")
    hint = _arity_hint(sample, taken)
    if hint:
        summary += " " + hint
    senders = _senders(facts, proc, mine)
    if senders:
        summary += f" They all come from {senders}."
    summary += (" Match that shape (or add a catch-all clause that logs and drops what it "
                "does not expect), or fix what the sender sends.")
    evidence = [int(seqs[0]), int(seqs[-1])] + [int(r) for r in mine[:10]]
    return Cause("unmatched_messages", 0.85, summary, sorted(set(evidence)), [who])


def _arity_hint(sample: Any, taken: dict[str, int]) -> str:
    """"{:reading, _, _, _} has 4 elements where the {:reading, _, _} it takes has 3"."""
    if not (isinstance(sample, tuple) and sample):
        return ""
    shape = message_shape(sample)
    tag = shape.split(",", 1)[0]
    for other in taken:
        if other != shape and other.split(",", 1)[0] == tag:
            n = other.count("_") + 1
            return (f"{shape} is a {len(sample)}-tuple where the {other} it does take has {n} "
                    f"elements: the format changed (an extra field), and its receive matches "
                    f"the {n}-element form only.")
    return ""


def _senders(facts: Facts, proc, mine: np.ndarray) -> str:
    table = facts.messages(receivers=[proc.pid])
    rows = table[table["receive_seq"].isin(mine.tolist())]
    names = rows["sender_name"].fillna(rows["sender"]).dropna()
    if not len(names) or len(names) < 0.9 * len(mine):
        return ""
    counts = names.value_counts()
    return ", ".join(str(n) for n in counts.index[:3])


# -- a receive that scans the queue -------------------------------------------

def mailbox_scans(facts: Facts) -> list[Cause]:
    tt = facts.history()
    raw = tt.raw
    out = []
    for proc in tt.processes():
        seqs, level = proc.sampled()
        if not proc.state_seqs or len(level) < MIN_SAMPLES or \
                int(level.max()) < 10 * MAILBOX_GROWTH:
            continue
        ts_in, ts_out = np.asarray(proc.state_ts_in), np.asarray(proc.state_ts_out)
        durations = (ts_out - ts_in) / 1e3
        points = []
        for seq, queued in zip(seqs.tolist(), level.tolist()):
            t = int(raw.ts_ns[seq])
            lo, hi = np.searchsorted(ts_in, [t - NEAR_NS, t + NEAR_NS])
            if hi - lo >= 3:
                points.append((queued, float(np.median(durations[lo:hi])), seq))
        if len(points) < MIN_SAMPLES:
            continue
        queued = np.array([p[0] for p in points], dtype=float)
        took = np.array([p[1] for p in points])
        rho = _rank_correlation(queued, took)
        slow, fast = took[queued.argmax()], took[queued.argmin()]
        # a callback's time against its queue's length: d = base + per * queued
        per = float(np.polyfit(queued, took, 1)[0]) if np.ptp(queued) else 0.0
        added = per * queued.max()
        if rho < SCAN_RHO or slow < SCAN_RATIO * max(fast, 1e-3) or added < SCAN_MIN_US \
                or added < SCAN_SHARE * slow:
            continue
        waited = _received_inside(facts, proc, ts_in, ts_out)
        if waited is None:
            continue
        out.append(_scan_cause(facts, proc, points, rho, per, waited))
    return out


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _received_inside(facts: Facts, proc, ts_in: np.ndarray, ts_out: np.ndarray):
    """(shape, count, a sample) of what the process took off its queue inside its
    callbacks (a receive in the callback), when that carries no reference: a
    receive the runtime cannot shortcut. None otherwise."""
    raw = facts.store.raw()
    direct = proc.direct_seqs
    if len(direct) < 0.3 * len(proc.state_seqs):
        return None
    ts = raw.ts_ns[direct]
    k = np.searchsorted(ts_out, ts)
    ok = k < len(ts_out)
    inside = direct[ok][ts_in[k[ok]] <= ts[ok]]
    if len(inside) < 0.3 * len(proc.state_seqs):
        return None
    shapes: dict[str, int] = {}
    for r in inside[:200].tolist():
        term = raw.term(r)
        if _has_ref(term):
            return None          # a reply to a call, or tagged with a reference
        shapes[message_shape(term)] = shapes.get(message_shape(term), 0) + 1
    shape = max(shapes, key=shapes.get)
    return shape, len(inside), raw.term(int(inside[0]))


def _has_ref(term: Any, depth: int = 0) -> bool:
    if isinstance(term, Reference):
        return True
    if isinstance(term, ImproperList):
        return isinstance(term.tail, Reference) or _has_ref(list(term.items), depth)
    if depth < 3 and isinstance(term, (tuple, list)):
        return any(_has_ref(t, depth + 1) for t in list(term)[:8])
    return False


def _scan_cause(facts: Facts, proc, points: list, rho: float, per_us: float,
                waited: tuple) -> Cause:
    who = _who(facts, proc)
    shape, count, sample = waited
    points = sorted(points)
    (q_lo, d_lo, s_lo), (q_hi, d_hi, s_hi) = points[0], points[-1]
    per = per_us * 1e3
    at = min(int(np.searchsorted(proc.state_seqs, s_hi)), len(proc.state_seqs) - 1)
    step = proc.states[at]
    callback = f"{step['callback']} of {message_shape(step['message'])}"
    shown = render(sample, facts.store.syntax, 60)
    summary = (f"The callbacks of {who} get slower as its mailbox grows: {callback} took about "
               f"{d_hi:.0f} us with {q_hi:,} messages queued and {d_lo:.0f} us with {q_lo:,} "
               f"(the node's own counts; rank correlation {rho:.2f} over {len(points)} samples), "
               f"some {per:.0f} ns more per queued message. Inside its callbacks it waits for "
               f"{shape} ({count:,} taken that way; the first was {shown}), a message with no "
               "reference made just before it to match on: a selective receive that scans the "
               "whole mailbox, past every queued message, before it finds its answer. With "
               "thousands queued each callback walks thousands of messages, so draining a "
               "backlog of N costs O(N^2) and the longer the queue, the slower it drains. Tag "
               "the request with make_ref() (or an alias) and match on it, which lets the "
               "runtime skip the old messages, or take the answer as a message of its own "
               "(handle_info) instead of waiting for it.")
    return Cause("mailbox_scan", 0.85, summary, sorted({s_lo, s_hi}), [who])
