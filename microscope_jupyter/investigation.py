"""Investigate: from a question to a confirmed cause, each deeper trace proposed
to a person (or within ceilings they set ahead), run only when approved, and
the hypotheses scored again on everything recorded.

    inv = s.investigate("Why is the balance lower than the deposits?")
    inv                       # hypotheses, the proposed trace: Approve / Deny
    inv.approve()             # runs it (or click), scores again, proposes the next
    inv = s.investigate(q, approve={"max_events": 200_000})   # pre-approved within these
    inv.answer                # the explanation, with the confirming evidence
    inv.path                  # one row per step: hypothesis, trace, decision, what it showed

One engine for the notebook (``s.investigate``, ``%beam_investigate``) and
for assistants (the MCP ``investigate`` tool, whose proposals go through the
same approval as ``propose_trace``). The loop ends when a hypothesis is
confirmed, when the budget (traces, trace seconds, events) is spent, when
no hypothesis has a trace left to try, or when the person stops it. A trace
runs with every limit a notebook's trace has (tightened to the ceilings);
a denied trace is never proposed again; every step goes to ``s.audit``, which
``s.save`` keeps and the report shows.
"""

from __future__ import annotations

import dataclasses
import html
import time
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from .agent.approval import Ceilings, TraceRequest, now
from .agent.options import ASSISTANT_CEILINGS, TraceLimits
from .analysis.hypotheses import Hypothesis, Probe, event_rates, hypotheses
from .errors import MicroscopeError

__all__ = ["Investigation", "Budget", "PATH_COLUMNS"]

PATH_COLUMNS = ["step", "hypothesis", "claim", "trace", "predicted", "decision", "events",
                "showed"]


@dataclass(frozen=True)
class Budget:
    """What one investigation may spend, over all its traces."""

    traces: int = 3
    seconds: float = 30.0
    events: int = 1_000_000


@dataclass
class Step:
    hypothesis: str
    claim: str
    request: TraceRequest
    predicted: str
    decision: str = "pending"     # approved by ..., denied by ..., refused: why
    events: int = 0
    showed: str = ""


@dataclass
class _Ask:
    """The proposal waiting for the person."""

    step: Step
    probe: Probe


class Investigation:
    """One question followed through deeper traces to a confirmed cause."""

    def __init__(self, session: Any, question: str, *, budget: Budget | dict | None = None,
                 approve: Ceilings | dict | Callable[[list[str]], bool] | None = None,
                 reproduce: Callable[[], Any] | None = None, by: str = "notebook"):
        self.session = session
        self.question = question
        self.budget = Budget(**budget) if isinstance(budget, dict) else budget or Budget()
        if isinstance(approve, dict):        # ceilings as keywords: max_events=..., ...
            approve = Ceilings(**approve)
        self.approve_with = approve          # Ceilings, a callable, or None: ask the person
        self.reproduce = reproduce           # fired as each trace starts
        self.by = by
        self.steps: list[Step] = []
        self.status = "running"              # running, waiting, confirmed, spent, exhausted, stopped
        self.pending: _Ask | None = None
        self._tried: set[tuple] = set()      # probes run or denied: never proposed again
        self._traced: Step | None = None     # the step whose trace the next scoring judges
        self._seconds = 0.0
        self._events = 0
        self.hypotheses: list[Hypothesis] = []

    # -- the loop ----------------------------------------------------------------

    def run(self) -> "Investigation":
        """Score, propose, and (where approval is given ahead) trace, until the
        investigation ends or a proposal waits for the person."""
        while self.status == "running":
            self.hypotheses = hypotheses(self.session.facts, self.question,
                                         tried=frozenset(self._tried))
            if self._traced is not None:
                self._judge(self._traced)
            if any(h.status == "confirmed" for h in self.hypotheses):
                self._finish("confirmed")
                break
            spent = self._spent()
            if spent:
                self._finish("spent", spent)
                break
            nxt = next((h for h in self.hypotheses if h.status == "open" and h.probe
                        and h.probe.key not in self._tried), None)
            if nxt is None:
                self._finish("exhausted")
                break
            self._propose(nxt)
        return self

    def _propose(self, h: Hypothesis) -> None:
        probe = h.probe
        request = self._request(probe, h)
        step = Step(h.kind, h.claim, request, self._predict(probe, request.limits()))
        self.steps.append(step)
        try:
            request.spec()          # what s.trace would refuse, refused before anyone is asked
        except MicroscopeError as exc:
            self._decided(step, probe, f"refused: {str(exc).splitlines()[0]}")
            return
        if self._ceilings is not None:
            refusal = self._ceilings.refuse(request)
            if refusal:
                self._decided(step, probe, f"refused: {refusal}")
            else:
                self._trace(step, probe, "pre-approval")
        elif callable(self.approve_with):
            if self.approve_with(request.describe()):
                self._trace(step, probe, self.by)
            else:
                self._decided(step, probe, f"denied by {self.by}")
        else:
            self.pending = _Ask(step, probe)
            self.status = "waiting"
            self._audit("proposed", step)

    def approve(self) -> "Investigation":
        """Approve the trace waiting for the person: it runs, then the loop goes on."""
        ask = self._take_pending()
        self._trace(ask.step, ask.probe, self.by)
        return self.run()

    def deny(self) -> "Investigation":
        """Deny the trace waiting for the person: it is never proposed again."""
        ask = self._take_pending()
        self._decided(ask.step, ask.probe, f"denied by {self.by}")
        return self.run()

    def stop(self) -> "Investigation":
        """End the investigation here (a waiting proposal is withdrawn)."""
        if self.pending is not None:
            self._decided(self.pending.step, self.pending.probe, "withdrawn: stopped")
            self.pending = None
        self._finish("stopped")
        return self

    def _take_pending(self) -> _Ask:
        if self.pending is None:
            raise MicroscopeError(f"no trace waits for approval (the investigation is "
                                  f"{self.status}); look at inv.path for what ran")
        ask, self.pending = self.pending, None
        self.status = "running"
        return ask

    def _decided(self, step: Step, probe: Probe, decision: str) -> None:
        step.decision = decision
        self._tried.add(probe.key)
        self._audit("decision", step)

    def _trace(self, step: Step, probe: Probe, by: str) -> None:
        step.decision = f"approved by {by}"
        self._tried.add(probe.key)
        r = step.request
        before = len(self.session.store)
        try:
            rec = self.session.trace(*r.processes, modules=r.modules,
                                     **r.limits().trace_options())
        except MicroscopeError as exc:
            step.decision = f"refused: {str(exc).splitlines()[0]}"
            self._audit("decision", step)
            return
        started = time.monotonic()
        if self.reproduce is not None:
            self.reproduce()
        limit = r.limits().duration_s or probe.seconds
        while rec.state == "running" and time.monotonic() - started < limit + 10:
            time.sleep(0.05)      # the trace stops itself at its duration
        if rec.state == "running":
            rec.stop()
        self._seconds += time.monotonic() - started
        step.events = len(self.session.store) - before
        self._events += step.events
        self._traced = step      # what it showed is read off the scoring that follows

    def _judge(self, step: Step) -> None:
        """What the trace of ``step`` showed, from the hypotheses scored after it."""
        self._traced = None
        mine = next((h for h in self.hypotheses if h.kind == step.hypothesis), None)
        step.showed = (f"confirmed: {mine.claim}" if mine is not None and
                       mine.status == "confirmed" else
                       f"no {step.hypothesis} in {step.events:,} events")
        self._audit("traced", step)

    def _finish(self, status: str, why: str = "") -> None:
        self.status = status
        self._record(f"{status}{': ' + why if why else ''}; {len(self.steps)} step(s)")

    def _spent(self) -> str:
        b = self.budget
        ran = self.traces_run
        if ran >= b.traces:
            return f"{ran} trace(s), the budget's {b.traces}"
        if self._seconds >= b.seconds:
            return f"{self._seconds:.0f} s of tracing, the budget's {b.seconds:g}"
        if self._events >= b.events:
            return f"{self._events:,} events, the budget's {b.events:,}"
        return ""

    @property
    def _ceilings(self) -> Ceilings | None:
        """The ceilings approval was given within, if it was given that way."""
        return self.approve_with if isinstance(self.approve_with, Ceilings) else None

    def _request(self, probe: Probe, h: Hypothesis) -> TraceRequest:
        limits = TraceLimits().tighter(self._ceilings or ASSISTANT_CEILINGS).replace(
            duration_s=min(probe.seconds, self.budget.seconds - self._seconds),
            **dict(probe.options))
        return TraceRequest(list(probe.processes), list(probe.modules),
                            dataclasses.asdict(limits), f"to decide: {h.claim} ({probe.why})")

    def _predict(self, probe: Probe, limits: TraceLimits) -> str:
        rates = event_rates(self.session.facts)
        rate = (sum(rates.get(p, 0.0) for p in probe.processes) if probe.processes
                else sum(rates.values()))
        calls = (", plus one call and one return event per call of "
                 f"{', '.join(probe.modules)} (not counted before it runs)"
                 if probe.modules else "")
        return (f"about {rate:,.0f} events/s from these processes' rate in the recording"
                f"{calls}; limits: {limits.max_rate:,} events/s (more are dropped and counted), "
                f"{limits.max_events:,} events, {limits.duration_s:g} s")

    def _audit(self, what: str, step: Step) -> None:
        self._record(f"{what}: {step.decision}" + (f"; {step.showed}" if step.showed else ""),
                     hypothesis=step.hypothesis, trace=step.request.summary())

    def _record(self, outcome: str, **arguments: str) -> None:
        """One audit record of this investigation (``s.audit``, saved with the recording)."""
        self.session.audit.append({"at": now(), "tool": "investigate", "arguments": {
            "question": self.question, **arguments}, "outcome": outcome})

    # -- what it found ---------------------------------------------------------------

    @property
    def answer(self) -> Any:
        """The explanation of the question over everything recorded."""
        return self.session.explain(self.question)

    @property
    def path(self) -> pd.DataFrame:
        """One row per step: the hypothesis, the trace, the decision, what it showed."""
        return pd.DataFrame([(i + 1, s.hypothesis, s.claim, s.request.summary(), s.predicted,
                              s.decision, s.events, s.showed)
                             for i, s in enumerate(self.steps)], columns=PATH_COLUMNS)

    @property
    def traces_run(self) -> int:
        return sum(1 for s in self.steps if s.decision.startswith("approved"))

    def __repr__(self) -> str:
        return self.text()

    def text(self) -> str:
        lines = [f"Investigation of {self.question!r}: {self.status}"]
        for h in self.hypotheses:
            lines.append(f"  [{h.status}] {h.kind}: {h.claim[:160]}")
        for i, s in enumerate(self.steps):
            lines.append(f"  step {i + 1}: {s.request.summary()}: {s.decision}"
                         + (f"; {s.showed[:160]}" if s.showed else ""))
        if self.pending is not None:
            lines.append("  waiting for approval: inv.approve() or inv.deny()")
            lines += [f"    - {line}" for line in self.pending.step.request.describe()]
            lines.append(f"    - predicted: {self.pending.step.predicted}")
        elif self.status == "confirmed":
            lines.append("  " + self.answer.text)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self.as_html()

    def as_html(self) -> str:
        """Hypotheses, steps, and the waiting trace (or the answer), as HTML."""
        rows = "".join(f"<li><b>[{html.escape(h.status)}] {html.escape(h.kind)}</b>: "
                       f"{html.escape(h.claim)}</li>" for h in self.hypotheses)
        steps = "".join(f"<li>{html.escape(s.request.summary())}: <b>"
                        f"{html.escape(s.decision)}</b>{'; ' + html.escape(s.showed) if s.showed else ''}"
                        "</li>" for s in self.steps)
        out = [f"<div class='microscope-investigation'><p><b>{html.escape(self.question)}</b>"
               f" &mdash; {html.escape(self.status)}</p><p>Hypotheses:</p><ol>{rows}</ol>"]
        if steps:
            out.append(f"<p>Traces:</p><ol>{steps}</ol>")
        if self.pending is not None:
            lines = self.pending.step.request.describe() + [
                f"predicted: {self.pending.step.predicted}"]
            out.append("<p><b>Proposed trace, waiting for approval</b> (inv.approve() or "
                       "inv.deny()):</p><ul>" + "".join(f"<li>{html.escape(x)}</li>"
                                                        for x in lines) + "</ul>")
        elif self.status == "confirmed":
            out.append(f"<p>{html.escape(self.answer.text)}</p>")
        return "".join(out) + "</div>"

    def view(self) -> Any:
        """The investigation with Approve / Deny / Stop buttons (a widget)."""
        from .widgets.investigation import InvestigationView

        return InvestigationView(self)

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        if self.pending is not None:
            display(self.view())
        else:
            display(HTML(self._repr_html_()))
