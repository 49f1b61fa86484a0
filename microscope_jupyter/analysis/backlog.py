"""Backlogs: a mailbox that grew, and what ate the handling time.

    for cause in backlogs(facts): ...   # Cause("backlog", ...)
    message_shape(("tick", 3))             # "{:tick, _}"

A backlog is read from the node's own samples of the queue (never from the
count estimated between them); its span runs from the sample before the
queue passed a tenth of its peak to the first after it fell back, inside
the one recording that holds the peak, so the handling rate counts the
draining and never the gap between two traces. Rates are over the part of
the span where callbacks could be seen (a state hook may reach a backlogged
server late); arrivals are the queue's change on the node plus what was
handled, so shedding and sampling of receive events cannot lower them. The
callbacks grouped by message shape (with the periodic slow ones), garbage
collections, long schedules and the tool's own cost complete the summary.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from ..render.names import known_as
from .detector_kit import MAILBOX_GROWTH, Cause, message_shape
from .facts import Facts


__all__ = ["backlogs", "message_shape"]


def backlogs(facts: Facts) -> list[Cause]:
    tt = facts.history()
    raw, events = tt.raw, facts.store.frame()   # with the _aux and _duration_ns columns
    spans = facts.store.recording_spans()
    out = []
    for proc in tt.processes():
        seqs, level = proc.sampled()
        if not len(level) or int(level.max()) < MAILBOX_GROWTH:
            continue
        peak_at = int(level.argmax())
        peak = int(level[peak_at])
        # the backlog's span, in the node's own samples of the one recording
        # that holds the peak: from the sample before the queue passed a tenth
        # of its peak to the first one after it fell back (or the last)
        span = _span_of(spans, int(raw.ts_ns[int(seqs[peak_at])]))
        mine = np.flatnonzero((raw.ts_ns[seqs] >= span[0]) & (raw.ts_ns[seqs] <= span[1]))
        seqs, level = seqs[mine], level[mine]
        peak_at = int(level.argmax())
        high = np.flatnonzero(level >= max(1, peak // 10))
        first = max(int(high[0]) - 1, 0)
        last = min(int(high[-1]) + 1, len(seqs) - 1)
        # by time, not seq: a sample lands in the batch its message reached the
        # tracer in, not always among the callbacks of its moment
        t0, t1 = int(raw.ts_ns[int(seqs[first])]), int(raw.ts_ns[int(seqs[last])])
        name = proc.last_name(int(seqs[last]))
        who = known_as(name, proc.pid)
        summary = f"The mailbox of {who} grew to {peak} messages (the node's own count)"
        evidence = [int(seqs[first]), int(seqs[peak_at]), int(seqs[last])]
        ts = raw.ts_ns[events["seq"].to_numpy()]
        window = events[(ts >= t0) & (ts <= t1) & (events["pid"] == proc.pid).to_numpy()]
        states = facts.states(proc.pid)
        state_ts = raw.ts_ns[states["seq"].to_numpy(dtype=np.int64)]
        # Callbacks count only from when they could be seen: a state hook
        # that reached a backlogged server late saw none before it.
        seen_from = int(state_ts.min()) if len(states) else None
        tool = 0.0
        if seen_from is None or seen_from > t1:
            grew = (int(level[last]) - int(level[first])) / max((t1 - t0) / 1e9, 1e-3)
            summary += (f"; its queue changed by about {grew:+.0f} messages per second "
                        "between the node's samples. Its callbacks were not recorded (a "
                        "trace with state=True shows what took the time).")
        else:
            w0 = max(t0, seen_from)
            sample_ts = raw.ts_ns[seqs]
            k0 = int(np.searchsorted(sample_ts, w0, side="right")) - 1   # the sample at or before
            q0 = int(level[max(k0, first)])
            seconds = max((t1 - w0) / 1e9, 1e-3)
            handled = states[(state_ts >= w0) & (state_ts <= t1)]
            arrived = max(int(level[last]) - q0 + len(handled), 0)
            late = (f" (callbacks seen from {(w0 - t0) / 1e9:.1f} s into it, when the state "
                    "hook reached the process)" if w0 - t0 > 0.05 * (t1 - t0) else "")
            came = (f"about {arrived / seconds:.0f} arrived (the queue's change on the node "
                    "plus what it handled)" if arrived else
                    "none arrived: it was draining what had queued before")
            summary += (f": over {seconds:.1f} s{late} it handled {len(handled) / seconds:.0f} "
                        f"per second while {came}.")
            evidence += _sampling_note(window)
            if len(handled):
                busy = handled["duration_us"].sum() / 1e6 / seconds
                summary += f" It was busy {min(busy, 1.0):.0%} of that time"
                slow, slow_seqs = _slowest_shapes(handled)
                summary += (f": {slow}." if slow else ".")
                evidence += slow_seqs
                # in whole percent, as the summary prints it, so the words and the
                # thresholds agree (a share that prints as 100% is not "more")
                tool = round(handled["tool_us"].sum() / max(handled["duration_us"].sum(), 1e-9), 2)
                if tool > 1.0:
                    summary += (f" The recording itself added {tool:.0%} to those callbacks, "
                                "more than they took: much of this backlog is the tool's. Trace "
                                "with state=False to see the app alone.")
                elif tool > 0.3:
                    summary += (f" The recording itself added {tool:.0%} to those callbacks: "
                                "part of the slowness is the tool's.")
        for kind, what in (("long_gc", "garbage collections"), ("long_schedule",
                                                                "long runs without yielding")):
            hits = window[window["kind"] == kind]
            if len(hits):
                worst = hits["_duration_ns"].max() / 1e6
                summary += f" {len(hits)} {what} (up to {worst:.0f} ms) fell in that window."
                evidence += [int(s) for s in hits["seq"]]
        heaps = window[window["kind"] == "large_heap"]
        if len(heaps):
            summary += (f" Its heap reached {int(heaps['_aux'].max()):,} words {len(heaps)} "
                        "times meanwhile: the slow work also churns memory (garbage "
                        "collection).")
            evidence += [int(s) for s in heaps["seq"].head(5)]
        summary += " Move the slow work out of the callback (a Task), batch it, or shed load."
        out.append(Cause("backlog", 0.5 if tool > 1.0 else 0.8, summary, sorted(set(evidence)),
                         [who]))
    return out


def _span_of(spans: list[tuple[int, int]], ts: int) -> tuple[int, int]:
    """The recording (first, last ns) that holds ``ts``: rates never run across
    the untraced gap between two traces of a session."""
    for lo, hi in spans:
        if lo <= ts <= hi:
            return lo, hi
    return (spans[0][0], spans[-1][1]) if spans else (ts, ts)


def _sampling_note(window: pd.DataFrame) -> list[int]:
    """Seqs of the drop and granularity rows in the window (evidence that the
    trace kept less than all: the figures above come from the node's samples
    and the callbacks, which are never sampled away)."""
    rows = window[window["kind"].isin(["dropped", "granularity"])]
    return [int(s) for s in rows["seq"].head(5)]


def _duration(ms: float) -> str:
    if ms < 0.0005:
        return "under 1 us"
    return f"{ms:.1f} ms" if ms >= 0.1 else f"{ms * 1000:.0f} us"


def _slowest_shapes(handled: pd.DataFrame) -> tuple[str, list[int]]:
    """What took the handling time: callbacks grouped by message shape, the
    costliest first, with how often the slow ones come."""
    table = pd.DataFrame({"callback": handled["callback"].astype(str),
                          "shape": [message_shape(m) for m in handled["message"]],
                          "ms": handled["duration_us"].to_numpy() / 1000.0,
                          "seq": handled["seq"].to_numpy()})
    parts, seqs = [], []
    totals = table.groupby(["callback", "shape"], sort=True)["ms"].sum().sort_values(
        ascending=False, kind="stable")
    for (callback, shape), total in totals.head(2).items():
        group = table[(table["callback"] == callback) & (table["shape"] == shape)]
        typical = float(group["ms"].median())
        slow = group[group["ms"] > max(3 * typical, 1.0)]
        text = f"{callback} of {shape} took {total:.0f} ms in all ({len(group)} calls)"
        if len(slow) and len(slow) < len(group):
            every = np.diff(np.flatnonzero((group["ms"] > max(3 * typical, 1.0)).to_numpy()))
            n = int(every[0]) if len(every) else 0
            suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
            period = f"every {n}{suffix}" if len(every) and (every == every[0]).all() \
                else f"{len(slow)} of them"
            low, high = f"{slow['ms'].min():.0f}", f"{slow['ms'].max():.0f}"
            rest = _duration(typical)
            text += (f"; {period} took {low if low == high else f'{low}-{high}'} ms, "
                     f"the rest {'' if rest.startswith('under') else 'about '}{rest}")
        parts.append(text)
        seqs += [int(s) for s in (slow if len(slow) else group).nlargest(5, "ms")["seq"]]
    return "; ".join(parts), seqs
