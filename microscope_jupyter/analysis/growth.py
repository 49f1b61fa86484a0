"""State that keeps growing: a GenServer whose state gains entries on every
callback and never gives them back (a cache with no eviction, a log kept in
the state, a map of finished requests).

    state_growth(facts)   # [Cause("state_growth", ...)]
    state_entries(term)      # map keys and list/tuple elements, nested

Two kinds of evidence, each read only for the processes that may grow:
recorded states (small enough to copy), sized by ``state_entries``; and,
for a state too large to copy, the sizes the state hook reports of a big map
that changed (``.cache: changed, a map of 10,233 -> 10,234 keys``), which
cost it nothing to take. A series that gave back a fifth of what it gained
(a buffer flushed, a cache trimmed) is bounded, not growth.
"""

from __future__ import annotations


import numpy as np

from ..beam.etf import decode
from ..render.elixir import render
from ..store import joins
from ..store.otp import STATE_LARGE, map_sizes, state_recorded, transition
from .detector_kit import Cause, state_entries
from .diff import transition_changes
from .facts import Facts


__all__ = ["state_growth", "state_entries"]

_MAP_MARK = b"$microscope_map"   # in a state event's payload: a big map's sizes
_SAMPLES = 200                   # states sized per process before all of them are


def state_growth(facts: Facts) -> list[Cause]:
    growing = _maybe_growing(facts)
    if not growing:
        return []
    states = joins.states(facts.store, growing)
    events = facts.store.frame()
    out = []
    for pid, group in states.groupby("pid", sort=True):
        name = next((n for n in group["name"] if isinstance(n, str)), None) or pid
        cause = _growth(events, group, name)
        if cause is not None:
            out.append(cause)
    return out


def _grows(sizes: np.ndarray) -> bool:
    """Steadily up, still at the end, and never giving much back."""
    steps = np.diff(sizes)
    if len(steps) < 19:
        return False
    late = steps[-max(len(steps) // 4, 1):]
    gave_back = -steps[steps < 0].sum() > 0.2 * steps[steps > 0].sum()
    return not (sizes[-1] - sizes[0] < 20 or (steps < 0).mean() > 0.05
                or (steps > 0).mean() < 0.5 or (late > 0).mean() < 0.5 or gave_back)


def _growth(events, group, name: str) -> Cause | None:
    """One series of sizes across the callbacks: a recorded state's entries,
    else the last size moved on by the keys the hook's big maps gained."""
    sizes, seqs, maps = [], [], {}
    size = None
    start = group["before"].iloc[0]
    if state_recorded(start):
        size = state_entries(start)
        sizes.append(size)
    for seq, after in zip(group["seq"].tolist(), group["after"]):
        if state_recorded(after):
            size = state_entries(after)
        else:
            transition = events["term"].iloc[seq] or {}
            moved = [(steps, map_sizes(v)) for steps, v in transition.get("changes") or []]
            moved = [(steps, m) for steps, m in moved if m is not None]
            if not moved:
                continue
            if size is None:   # no state copied yet: count from the big maps alone
                size = sum(was for _, (was, _) in moved)
                sizes.append(size)
            for steps, (was, now) in moved:
                size += now - was
                path = _path(steps)
                maps[path] = (maps.get(path, (was, was))[0], now)
        sizes.append(size)
        seqs.append(seq)
    sizes = np.array(sizes)
    if len(sizes) < 20 or not _grows(sizes):
        return None
    first, last = (group["before"].iloc[0], group["after"].iloc[-1])
    part = ""
    if maps:
        path, (was, now) = max(maps.items(), key=lambda kv: kv[1][1] - kv[1][0])
        per = (sizes[-1] - sizes[0]) / len(seqs)
        part = (f" The state map itself gains ~{per:.1f} keys per callback and never shrinks"
                if not path else f" The growing part is {path}, a map now of {now:,} keys, "
                f"gaining ~{per:.1f} per callback and never shrinking")
        part += " (sizes from the state hook: too big to copy on every callback)."
    elif isinstance(first, dict) and isinstance(last, dict):
        own = len(last) - len(first)
        field, grew = max(((k, state_entries(v) - state_entries(first.get(k)))
                           for k, v in last.items()), key=lambda kv: kv[1], default=(None, 0))
        if own >= grew:
            part = (f" The state map itself gains ~{own / len(seqs):.1f} keys per "
                    "callback and never shrinks.")
        else:
            part = (f" The growing part is {render(field, 'elixir', 40)}, gaining "
                    f"~{grew / len(seqs):.1f} entries per callback and never shrinking.")
    return Cause("state_growth", 0.6,
                 f"The state of {name} grew steadily from {sizes[0]:,} to {sizes[-1]:,} "
                 f"entries over {len(seqs)} callbacks.{part} Unbounded growth ends in "
                 "memory trouble: evict, cap or move it to ETS.", [seqs[0], seqs[-1]], [name])


def _path(steps: tuple) -> str:
    """The Elixir path of a change (".cache"), as the diff spells it."""
    for change in transition_changes({"changes": [(steps, None)], "before": STATE_LARGE,
                                      "after": STATE_LARGE}) or []:
        return change.path
    return ""


def _maybe_growing(facts: Facts) -> set[int]:
    """Pid ids whose state events keep getting longer (a state that grows makes
    its events grow) and whose sampled states grow too, or whose last one
    carries a big map's sizes: only those are decoded whole to look closer."""
    events = facts.store.frame()
    rows = events[events["kind"] == "state"]
    raw = facts.store.raw()
    out = set()
    for pid, seqs in rows.groupby("_pid", sort=True)["seq"]:
        if len(seqs) < 20:
            continue
        lengths = raw.pay_len[seqs.to_numpy()]
        steps = np.diff(lengths)
        late = steps[-max(len(steps) // 4, 1):]
        if _MAP_MARK in raw.payload(int(seqs.iloc[-1])) or (
                lengths[-1] > lengths[0] and (late > 0).mean() >= 0.25
                and _sampled_grows(raw, seqs)):
            out.add(int(pid))
    return out


def _sampled_grows(raw, seqs) -> bool:
    """Whether ``_SAMPLES`` states, evenly spread, already grow: a queue or a
    pool whose events lengthen for a while is not decoded whole (60k states
    took ~45 s). States too big to copy are sized by the hook's sequence of
    changes, which a sample cannot follow: those are looked at whole."""
    picked = seqs.to_numpy()[np.linspace(0, len(seqs) - 1, min(len(seqs), _SAMPLES)).astype(int)]
    sizes = []
    for i, seq in enumerate(picked.tolist()):
        step = transition(decode(raw.payload(seq)))
        for state in ([step["before"]] if i == 0 else []) + [step["after"]]:
            if not state_recorded(state):
                return True
            sizes.append(state_entries(state))
    return _grows(np.array(sizes))
