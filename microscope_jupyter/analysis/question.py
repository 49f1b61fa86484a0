"""What a question to ``s.explain`` asks about: which processes, which symptom,
and when. The answer addresses those first.

    q = read_question(facts, "Why is Demo.WorkerB so slow since 10:32?")
    q.processes   # {"Demo.WorkerB"}
    q.symptoms    # {"slow"}
    q.moment_ns   # 10:32 on the recording's day, or None

Deterministic, no model: names are matched against the names the recording
holds (in full, or by their last segment: ``WorkerB``), symptoms by the words
people use for them, a moment by a clock time written in the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .detector_kit import Cause
from .facts import Facts

__all__ = ["Question", "read_question", "SYMPTOMS", "relevance"]

# A symptom, the words that ask about it, and the words a cause about it uses.
SYMPTOMS: dict[str, tuple[str, str]] = {
    "lost": (r"lost|los[ei]s?|missing|go(es)? missing|never (arriv|reach|get|show)|dropp|"
             r"vanish|not (received|counted|delivered|arriving)|disappear\w* message",
             r"lost|dropped|never (handled|arriv|taken|read|consumed)|dead pid|stale|unread|"
             r"died with"),
    "slow": (r"slow|behind|lag|latenc|take[sn]? (long|seconds|ages)|backlog|sluggish|"
             r"falling|throughput|busy",
             r"backlog|slow|mailbox|queue|behind|busy|took|ms\b|long_schedule|blocked"),
    "crashed": (r"crash|die[sd]?\b|dying|restart|exit|killed|exception|raise",
                r"crash|died|exit|restart|killed|raised"),
    "growing": (r"grow|memory|leak|keeps? (increas|climb|ris)|bigger|bloat|heap|ballooning",
                r"grow|grew|leak|heap|memory|gain|never (shrink|drop|remov|cancel|exit)|"
                r"accumulat|pil(e|ing) up"),
    "gone": (r"gone|disappear|vanish|shut ?down|stopp|no longer (run|there|alive)|went away",
             r"gave up|shut ?down|gone|intensity|exited|no longer|took .* with it"),
    "wrong": (r"wrong|incorrect|stale|unexpected|inconsistent|lower than|higher than|"
              r"doesn'?t (match|add up)|mismatch|bad value|off by",
              r"race|interleav|stale|order|overwr|lost update|wrong|instead of"),
    "stuck": (r"time ?out|timed out|hang|stuck|block|freez|never (return|answer|repl)|"
              r"deadlock|wait",
              r"deadlock|time(d)? ?out|never repl|blocked|waiting|postpone|stuck|cycle"),
}


@dataclass
class Question:
    text: str = ""
    processes: set[str] = field(default_factory=set)
    symptoms: set[str] = field(default_factory=set)
    moment_ns: int | None = None      # a clock time the question names, on the recording's day

    def __bool__(self) -> bool:
        return bool(self.processes or self.symptoms or self.moment_ns is not None)


def read_question(facts: Facts, question: str | None, proc: Any = None) -> Question:
    text = question or ""
    q = Question(text)
    names = {n for n in facts.events["name"].dropna().unique() if isinstance(n, str)}
    words = set(re.findall(r"[A-Za-z_][\w.]*", text))
    if proc is not None:
        words.add(str(proc))
    q.processes = {n for n in names if n in words or n.rsplit(".", 1)[-1] in words
                   or n.lstrip(":") in words}
    pids = set(re.findall(r"<\d+\.\d+\.\d+>", text + " " + str(proc or "")))
    q.processes |= pids
    lowered = text.lower()
    q.symptoms = {s for s, (asked, _) in SYMPTOMS.items() if re.search(rf"\b(?:{asked})", lowered)}
    q.moment_ns = _moment(facts, text)
    return q


def _moment(facts: Facts, text: str) -> int | None:
    """A clock time in the question (``10:32``, ``10:32:05``, ``at 10:32:05.250``),
    taken on the recording's day in UTC; None when there is none or the
    recording is empty."""
    found = re.search(r"\b([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.(\d{1,6}))?)?\b", text)
    ts = facts.store.raw().ts_ns if len(facts.store) else None
    if not found or ts is None or not len(ts):
        return None
    day = pd.Timestamp(int(ts.min()), tz="UTC").normalize()
    hour, minute, second = int(found[1]), int(found[2]), int(found[3] or 0)
    fraction = float(f"0.{found[4]}") if found[4] else 0.0
    at = day + pd.Timedelta(hours=hour, minutes=minute, seconds=second + fraction)
    return int(at.value)


def relevance(cause: Cause, q: Question, facts: Facts) -> tuple[int, int, int]:
    """How squarely ``cause`` answers ``q``: (about its processes, about its
    symptom, about its moment), each 1 or 0; sorted on, highest first."""
    about = int(bool(q.processes) and any(p in q.processes for p in cause.processes))
    symptom = int(bool(q.symptoms) and any(
        re.search(rf"\b(?:{SYMPTOMS[s][1]})", cause.summary, re.IGNORECASE) for s in q.symptoms))
    when = 0
    if q.moment_ns is not None and cause.evidence:
        ts = facts.store.raw().ts_ns
        seqs = np.asarray([s for s in cause.evidence if 0 <= s < len(ts)], dtype=np.int64)
        if len(seqs):
            nearest = int(np.min(np.abs(ts[seqs] - q.moment_ns)))
            when = int(nearest <= 5 * 10**9)      # within five seconds of the moment
    return about, symptom, when
