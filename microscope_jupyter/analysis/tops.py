"""The top processes as a recording sampled them, at a chosen moment.

    recorded_tops(facts, at_ms=250)   # pid, name, mailbox_len, memory_bytes, ...
    recorded_span_ms(facts)           # how long the recording runs, in ms

A trace's sampler reads each traced process's ``message_queue_len``
(``mailbox`` events) and its memory, heap and reductions (``vitals``) from
the node: these are the node's own figures as they were at the sample. At
``at_ms`` (ms since the recording began; its end if None) each process shows
its last sample at or before that moment, and when that sample was taken
(``mailbox_at_ms``, ``vitals_at_ms``). ``reductions_per_s`` is computed: the
reductions done between its last two samples over the time between them.
Only the processes a trace sampled are here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .detector_kit import HEAP_WORDS, REDUCTIONS
from .facts import Facts

__all__ = ["recorded_tops", "recorded_span_ms", "tidy", "RECORDED_COLUMNS", "TOP_MEASURES"]

RECORDED_COLUMNS = ["pid", "name", "mailbox_len", "mailbox_at_ms", "memory_bytes", "heap_words",
                    "reductions", "reductions_per_s", "vitals_at_ms", "top"]
# What each top ranks by, and whether a zero counts (an empty mailbox is no top).
TOP_MEASURES = {"mailbox": ("mailbox_len", False), "memory": ("memory_bytes", True),
                "reductions": ("reductions_per_s", False)}


def recorded_span_ms(facts: Facts) -> float | None:
    """From the recording's first event to its last, in ms; None if it is empty."""
    ts = facts.store.raw().ts_ns
    return float(ts.max() - ts.min()) / 1e6 if len(ts) else None


def recorded_tops(facts: Facts, at_ms: float | None = None, top: int = 10) -> pd.DataFrame:
    """The processes in the top ``top`` by mailbox, by memory or by reductions
    per second, each as last sampled at or before ``at_ms``; ``top`` lists
    which tops it is in. Empty when no trace sampled anything by then."""
    raw_ts = facts.store.raw().ts_ns
    if not len(raw_ts):
        return pd.DataFrame(columns=RECORDED_COLUMNS)
    t0 = int(raw_ts.min())
    events = facts.store.frame()
    sampled = events[events["kind"].isin(["mailbox", "vitals"])]
    ns = sampled["ts"].astype("int64").to_numpy() if len(sampled) else np.zeros(0, np.int64)
    if at_ms is not None:
        keep = ns <= t0 + round(at_ms * 1e6)
        sampled, ns = sampled[keep], ns[keep]
    if not len(sampled):
        return pd.DataFrame(columns=RECORDED_COLUMNS)
    sampled = sampled.assign(_ms=(ns - t0) / 1e6)
    rows: dict[str, dict] = {}
    mailbox = sampled[sampled["kind"] == "mailbox"].groupby("pid", sort=False).tail(1)
    for pid, name, count, ms in zip(mailbox["pid"], mailbox["name"], mailbox["_count"],
                                    mailbox["_ms"]):
        rows.setdefault(pid, _row(pid)).update(name=name, mailbox_len=int(count),
                                               mailbox_at_ms=round(float(ms), 3))
    vitals = sampled[sampled["kind"] == "vitals"]
    for pid, group in vitals.groupby("pid", sort=False):
        last = group.iloc[-1]
        term = last["term"] if isinstance(last["term"], dict) else {}
        row = rows.setdefault(pid, _row(pid))
        row.update(name=last["name"], memory_bytes=int(last["_aux"]),
                   heap_words=term.get(HEAP_WORDS), reductions=term.get(REDUCTIONS),
                   vitals_at_ms=round(float(last["_ms"]), 3))
        if len(group) > 1:
            before = group.iloc[-2]
            done = _number(term.get(REDUCTIONS)) - _number(
                before["term"].get(REDUCTIONS) if isinstance(before["term"], dict) else None)
            seconds = (last["_ms"] - before["_ms"]) / 1000
            if seconds > 0 and not np.isnan(done):
                row["reductions_per_s"] = done / seconds
    frame = tidy(pd.DataFrame(list(rows.values()), columns=RECORDED_COLUMNS[:-1]))
    tops: dict[str, list[str]] = {}
    for by, (column, zero_counts) in TOP_MEASURES.items():
        values = pd.to_numeric(frame[column], errors="coerce")
        ranked = frame.assign(_v=values).dropna(subset=["_v"])
        if not zero_counts:
            ranked = ranked[ranked["_v"] > 0]
        for pid in ranked.sort_values(["_v", "pid"], ascending=[False, True],
                                      kind="stable")["pid"].head(top):
            tops.setdefault(pid, []).append(by)
    frame["top"] = [tops.get(p, []) for p in frame["pid"]]
    return frame[frame["top"].map(bool)].reset_index(drop=True)


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing means missing, in a column's own kind: None in a text column,
    <NA> in a column of whole numbers (not a float NaN, nor ints made floats)."""
    for column in frame.columns:
        values = frame[column]
        present = values.dropna()
        if len(present) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                for v in present):
            frame[column] = values.astype("Int64")
        elif values.dtype == object or pd.api.types.is_string_dtype(values):
            frame[column] = values.astype(object).where(values.notna(), None)
    return frame


def _row(pid: str) -> dict:
    return {"pid": pid, "name": None, "mailbox_len": None, "mailbox_at_ms": None,
            "memory_bytes": None, "heap_words": None, "reductions": None,
            "reductions_per_s": None, "vitals_at_ms": None}


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else float("nan")
