"""The node's own log as evidence: what it logged while recording (Logger and
logger calls, crash and supervisor reports; ``store.logs``), read as facts.

    with_log_evidence(facts, causes)   # each cause + the error lines about its processes
    supervisor_reports(facts)          # seq, pid, who, ts_ns, entry: supervisors' own word

A line is about a process when the process logged it or a report names it:
a crash report is the crashed process's, a supervisor report is its
supervisor's and names the child (the event's peer). Lines at ``error`` and
worse are evidence for a cause that already names one of those processes;
their seqs join its evidence, the earliest first, a few per cause. Only the
header columns are read for that; payloads are decoded for supervisor
reports alone (``supervision`` reads them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..render.names import known_as
from ..store.logs import log_entry
from ..store.schema import KIND_CODES, LOG_LEVELS
from .detector_kit import Cause
from .facts import Facts

__all__ = ["with_log_evidence", "supervisor_reports", "ERROR_LEVEL"]

_LOG = KIND_CODES["log"]
ERROR_LEVEL = LOG_LEVELS.index("error")   # this and the levels above it (lower numbers)
_PER_CAUSE = 5     # a crash loop logs the same lines again: the first few say it


def with_log_evidence(facts: Facts, causes: list[Cause]) -> list[Cause]:
    """``causes``, each with the error-level log lines about its processes added
    to its evidence."""
    about = _error_lines(facts)
    if not len(about) or not causes:
        return causes
    for cause in causes:
        named = set(cause.processes)
        mine = about[about["who"].isin(named) | about["pid"].isin(named)
                     | about["peer_who"].isin(named) | about["peer"].isin(named)]
        if len(mine):
            cause.evidence = sorted(set(cause.evidence) | set(mine["seq"].head(_PER_CAUSE)))
    return causes


def _error_lines(facts: Facts) -> pd.DataFrame:
    return facts.cached("log error lines", lambda: _build_error_lines(facts))


def _build_error_lines(facts: Facts) -> pd.DataFrame:
    store = facts.store
    raw = store.raw()
    rows = np.flatnonzero((raw.kind == _LOG) & (raw.aux <= ERROR_LEVEL))
    if not len(rows):
        return pd.DataFrame(columns=["seq", "pid", "who", "peer", "peer_who"])
    frame = store.frame()
    names = frame["name"].to_numpy(dtype=object)
    texts = store.id_texts()
    names_of = _names_of(facts)
    pid = [texts[g] if g > 0 else None for g in raw.pid[rows].tolist()]
    peer = [texts[g] if g > 0 else None for g in raw.peer[rows].tolist()]
    return pd.DataFrame({
        "seq": rows.astype(np.int64),
        "pid": pid,
        "who": [known_as(n, p) for n, p in zip(names[rows], pid)],
        "peer": peer,
        "peer_who": [names_of(p) for p in peer],
    })


def _names_of(facts: Facts):
    """A pid's last name in the recording (a supervisor report's child), else the pid."""
    frame = facts.store.frame()
    last = frame.dropna(subset=["name"]).groupby("pid")["name"].last().to_dict()
    return lambda pid: last.get(pid, pid)


def supervisor_reports(facts: Facts) -> pd.DataFrame:
    """Every supervisor report the node logged (OTP's ``supervisor_report``:
    child_terminated, start_error, shutdown...): seq, pid (the supervisor),
    who (its name as the recording knows it), ts_ns and the decoded ``entry``
    (``store.logs``: context, reason, child_id, supervisor...)."""
    return facts.cached("supervisor reports", lambda: _build_supervisor_reports(facts))


def _build_supervisor_reports(facts: Facts) -> pd.DataFrame:
    store = facts.store
    raw = store.raw()
    columns = ["seq", "pid", "who", "ts_ns", "entry"]
    rows = np.flatnonzero((raw.kind == _LOG) & (raw.aux <= ERROR_LEVEL))
    if not len(rows):
        return pd.DataFrame(columns=columns)
    texts = store.id_texts()
    # a supervisor's reports are logged from supervisor's own functions: only those decoded
    by_supervisor = np.array([isinstance(t := texts[m], str) and "supervisor" in t
                              for m in raw.mfa[rows].tolist()], dtype=bool)
    rows = rows[by_supervisor]
    names = store.frame()["name"].to_numpy(dtype=object)
    out = []
    for i in rows.tolist():
        entry = log_entry(raw.term(i))
        label = entry.get("label") if isinstance(entry, dict) else None
        if not (isinstance(label, tuple) and label[:1] == ("supervisor",)):
            continue
        pid = texts[raw.pid[i]] if raw.pid[i] > 0 else None
        out.append((i, pid, known_as(names[i], pid), int(raw.ts_ns[i]), entry))
    return pd.DataFrame(out, columns=columns)
