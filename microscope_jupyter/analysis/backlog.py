"""Backlogs: a mailbox that grew, and what ate the handling time.

    for cause in backlogs(recorded): ...   # Cause("backlog", ...)
    message_shape(("tick", 3))             # "{:tick, _}"

A backlog is read from the node's own mailbox counts; its span runs from
when the queue passed a tenth of its peak until it fell back below it, so
the handling rate counts the draining. Arrival against handling rate, the
callbacks grouped by message shape (with the periodic slow ones), garbage
collections, long schedules and the tool's own cost make its summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..beam.terms import Atom
from ..render.elixir import render
from ..render.names import known_as
from .cause import Cause
from .findings import MAILBOX_GROWTH

if TYPE_CHECKING:  # pragma: no cover
    from .recorded import SessionBase

__all__ = ["backlogs", "message_shape"]


def backlogs(recorded: "SessionBase") -> list[Cause]:
    tt = recorded.time_travel()
    raw, events = tt.raw, recorded.store.frame()   # with the _aux and _duration_ns columns
    out = []
    for proc in tt.processes():
        seqs, level = proc.mailbox_levels()
        if not len(level) or int(level.max()) < MAILBOX_GROWTH:
            continue
        peak_at = int(level.argmax())
        # the backlog's span: from when it passed a tenth of its peak to when it fell back
        high = np.flatnonzero(level >= max(1, level[peak_at] // 10))
        start, end = int(seqs[high[0]]), int(seqs[high[-1]])
        seconds = max((raw.ts_ns[end] - raw.ts_ns[start]) / 1e9, 1e-3)
        name = proc.last_name(end)
        who = known_as(name, proc.pid)
        window = events[(events["seq"] >= start) & (events["seq"] <= end)
                        & (events["pid"] == proc.pid)]
        arrived = int((window["kind"] == "receive").sum())
        states = recorded.states(proc.pid)
        handled = states[(states["seq"] >= start) & (states["seq"] <= end)]
        summary = (f"The mailbox of {who} grew to {int(level[peak_at])} messages (the node's "
                   f"own count): {arrived / seconds:.0f} arrived per second while it handled "
                   f"{len(handled) / seconds:.0f}.")
        evidence = [start, end]
        tool = 0.0
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
                summary += (f" The recording itself added {tool:.0%} to those callbacks, more "
                            "than they took: much of this backlog is the tool's. Trace with "
                            "state=False to see the app alone.")
            elif tool > 0.3:
                summary += (f" The recording itself added {tool:.0%} to those callbacks: part "
                            "of the slowness is the tool's.")
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


def message_shape(message: Any) -> str:
    """A message's shape: its tag and arity, ``{:tick, _}``; gen calls and casts unwrapped."""
    if isinstance(message, tuple) and message and message[0] in (Atom("$gen_cast"),
                                                                 Atom("$gen_call")):
        message = message[-1]
    if isinstance(message, tuple) and message and isinstance(message[0], Atom):
        return "{" + ", ".join([render(message[0], "elixir", 40)] + ["_"] * (len(message) - 1)) + "}"
    return render(message, "elixir", 40) if isinstance(message, Atom) else type(message).__name__


def _duration(ms: float) -> str:
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
            period = f"every {int(every[0])}th" if len(every) and (every == every[0]).all() \
                else f"{len(slow)} of them"
            text += (f"; {period} took {slow['ms'].min():.0f}-{slow['ms'].max():.0f} ms, "
                     f"the rest about {_duration(typical)}")
        parts.append(text)
        seqs += [int(s) for s in (slow if len(slow) else group).nlargest(5, "ms")["seq"]]
    return "; ".join(parts), seqs
