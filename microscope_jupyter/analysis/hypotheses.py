"""Hypotheses: what could answer a question, which the recording confirms, and
for each still open, the one bounded trace that would decide it.

    for h in hypotheses(facts, "Why is the balance lower than the deposits?"):
        h.kind, h.status, h.claim, h.probe    # ("ets_race", "open", "...", Probe(...))

A hypothesis is *confirmed* when the recording already holds a cause of its
kind that answers the question (``s.explain``'s causes, each with its
evidence), *open* when a trace the recording lacks could show it, and
*ruled out* once that trace ran (``tried``) and showed nothing of the kind.
Each open one carries a ``Probe``: processes, ``modules=`` functions, trace
options and seconds, and why that trace decides it. Deterministic, no
model: the question's words (``question.SYMPTOMS``) and what the recording
shows (truncated states, growing memory, how little it saw of a process)
choose the probes; the causes' own detectors judge what the probes record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..store.otp import state_recorded
from .detector_kit import Cause
from .ets_races import ETS_CALLS
from .explain import explain
from .footprint import ATOM_MAKERS
from .facts import Facts
from .question import Question, read_question, relevance

__all__ = ["Probe", "Hypothesis", "hypotheses", "event_rates", "CONFIRMING"]

CONFIRMING = 0.6          # a cause this confident, about the question, confirms
PROBE_SECONDS = 3.0       # a probe's trace: what it looks for shows in seconds
LONGER_LOOK = 5.0         # ...and a longer default trace, when little was recorded
BIG_PAYLOAD = 65_536      # the largest payload limit a trace takes (agent/options.py)


@dataclass(frozen=True)
class Probe:
    """One bounded trace that would decide a hypothesis."""

    processes: tuple[str, ...]             # names or pids; () = every application process
    modules: tuple[str, ...] = ()          # call-traced functions (``s.trace(modules=...)``)
    options: tuple[tuple[str, Any], ...] = ()   # trace options beyond the defaults
    seconds: float = PROBE_SECONDS
    why: str = ""

    @property
    def key(self) -> tuple:
        """What makes two probes the same trace (a denied one is never proposed again)."""
        return (self.processes, self.modules, self.options)


@dataclass
class Hypothesis:
    kind: str                    # the cause kind that would confirm it
    claim: str                   # what would be true, in plain words
    score: float                 # how well it fits the question and the recording
    status: str = "open"         # confirmed, open, ruled out
    evidence: str = ""           # what supports (or ruled out) it so far
    probe: Probe | None = None
    cause: Cause | None = field(default=None, repr=False)


# What can be asked of a deeper trace: the cause kind a detector names from
# it, the symptoms it would explain, the question's words that point at it
# directly, and the claim.
# the BIFs the atom detector reads, as modules= spells them (it also knows Elixir's)
_ATOM_FUNCTIONS = tuple(m for m in ATOM_MAKERS if m.startswith("erlang:"))
_RULES = (
    ("ets_race", {"wrong", "lost"},
     r"\bets\b|\btables?\b|shared|balance|\bcounts?\b|total|counter|\bsum\b|tally",
     "processes read a shared ETS value and write it back while another writes it in "
     "between (a read-modify-write race)"),
    ("atom_growth", {"growing"}, r"\batoms?\b|atom_count|atom table",
     "a process makes new atoms from data (binary_to_atom/list_to_atom), which are never "
     "collected"),
    ("state_growth", {"growing"}, r"\bstate\b|\bcache|\bheaps?\b",
     "a process's state keeps growing, hidden in the recording by the payload limit"),
)


def hypotheses(facts: Facts, question: str | None = None, *,
               tried: frozenset = frozenset()) -> list[Hypothesis]:
    """Every hypothesis for ``question`` over ``facts``, best first: the
    confirmed ones, then the open ones by score, then the ruled out.
    ``tried``: the keys of probes already run."""
    q = read_question(facts, question, None)
    causes = explain(facts, question).causes
    # A question that names its subject (atoms, a table) is answered by a cause
    # of that kind, not by whatever else the recording shows, until the trace
    # that would show that kind has run.
    probes = {kind: _probe(kind, facts, q) for kind, *_ in _RULES}
    topics = {kind for kind, _, words, _ in _RULES if re.search(words, q.text, re.IGNORECASE)
              and probes[kind] is not None}
    untried = {k for k in topics if probes[k].key not in tried}
    confirmed = [_confirmed(row, q, facts, topics if untried else set())
                 for row in causes.itertuples(index=False)]
    confirmed = [h for h in confirmed if h is not None]
    known = {h.kind for h in confirmed}
    out = list(confirmed)
    for kind, symptoms, words, claim in _RULES:
        probe = probes[kind]
        if kind in known or probe is None:
            continue
        score = (0.3 * bool(symptoms & q.symptoms)
                 + 0.5 * bool(re.search(words, q.text, re.IGNORECASE)))
        if score == 0:
            continue
        h = Hypothesis(kind, claim, score, probe=probe)
        if probe.key in tried:
            h.status, h.score = "ruled out", 0.0
            h.evidence = (f"traced {_scope(probe)} for {probe.seconds:g} s: no {kind} in what "
                          "it recorded")
        out.append(h)
    more = _more_of(facts, q, tried)
    if more is not None and not confirmed:
        out.append(more)
    order = {"confirmed": 0, "open": 1, "ruled out": 2}
    return sorted(out, key=lambda h: (order[h.status], -h.score))


def _confirmed(row: Any, q: Question, facts: Facts, topics: set[str]) -> Hypothesis | None:
    cause = Cause(row.kind, row.confidence, row.summary, list(row.evidence),
                  list(row.processes))
    about, symptom, when = relevance(cause, q, facts)
    if cause.confidence < CONFIRMING or (q and not (about or symptom or when)):
        return None
    if topics and cause.kind not in topics:
        return None
    return Hypothesis(cause.kind, cause.summary, cause.confidence, "confirmed",
                      f"{len(cause.evidence)} events of evidence in the recording", None, cause)


def _probe(kind: str, facts: Facts, q: Question) -> Probe | None:
    processes = tuple(sorted(q.processes))
    if kind == "ets_race":
        return Probe(processes, ETS_CALLS, why=(
            "every ets:lookup/2 and ets:insert/2 with its key and value shows a read and its "
            "write-back, and any other process's write in between"))
    if kind == "atom_growth":
        return Probe(processes, _ATOM_FUNCTIONS, why=(
            "each call of the BIFs that make atoms, with its result, shows which process makes "
            "atoms it never made before, and how fast"))
    if kind == "state_growth":
        hidden = _states_hidden(facts)
        if not hidden:
            return None
        return Probe(tuple(hidden[:4]), options=(("payload_limit", BIG_PAYLOAD),), why=(
            f"their states went over the recording's payload limit and were not recorded; at "
            f"{BIG_PAYLOAD:,} bytes each state is, and its growth shows"))
    return None


def _states_hidden(facts: Facts) -> list[str]:
    """Processes whose states the recording could not copy (over the payload limit)."""
    states = facts.states()
    if not len(states):
        return []
    hidden = states[[not state_recorded(a) for a in states["after"]]]
    names = [n if isinstance(n, str) else p for n, p in zip(hidden["name"], hidden["pid"])]
    return list(dict.fromkeys(names))


def _more_of(facts: Facts, q: Question, tried: frozenset) -> Hypothesis | None:
    """Too little recorded of what the question asks about: a longer look at it."""
    rates = event_rates(facts)
    seen = sum(rates.get(p, 0.0) for p in q.processes) if q.processes else sum(rates.values())
    if seen > 0 and len(facts.store) >= 1_000:
        return None
    probe = Probe(tuple(sorted(q.processes)), seconds=LONGER_LOOK, why=(
        "the recording holds little of what the question asks about; a longer default trace "
        "records their messages, lifecycles and states"))
    if probe.key in tried:
        return None
    return Hypothesis("more", "the cause shows in a longer recording of these processes",
                      0.1, probe=probe)


def event_rates(facts: Facts) -> dict[str, float]:
    """Events a second each process (by name where it has one, else pid) made
    in the recording: what a trace of it is predicted to cost."""
    events = facts.events
    if not len(events):
        return {}
    span = max((events["ts"].iloc[-1] - events["ts"].iloc[0]).total_seconds(), 1e-3)
    who = np.where(events["name"].notna(), events["name"].astype(object),
                   events["pid"].astype(object))
    counts = {}
    for key, n in zip(*np.unique(np.asarray([str(w) for w in who]), return_counts=True)):
        counts[str(key)] = int(n) / span
    return counts


def _scope(probe: Probe) -> str:
    where = ", ".join(probe.processes) or "every application process"
    return where + (f" with calls of {', '.join(probe.modules)}" if probe.modules else "")
