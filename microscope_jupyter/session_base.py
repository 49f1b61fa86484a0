"""What every session answers, live or not: a thin facade over its ``Facts``.

``Session`` (attached to a node), ``OfflineSession`` (``mic.load(path)``)
and ``Cluster`` each hold one ``Facts`` (``s.facts``: the recording's data,
memoised) and, when live, plug a port into it for the few live lookups
analysis may make. This class only delegates: every query, detector and
explanation lives in ``analysis/`` and takes the facts, so a saved
recording answers exactly as the live one did.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .analysis.annotations import annotations_frame, make_annotation, notify
from .analysis.anomalies import anomalies
from .analysis.compare import VERSION_COLUMNS, Comparison, compare as compare_facts
from .analysis.expect import check_expectation
from .analysis.explain import Explanation, explain
from .analysis.facts import Facts
from .analysis.findings import Finding, findings_table
from .analysis.history import History
from .analysis.metrics import Dashboard, dashboard, metrics
from .analysis.query import Query
from .gitmeta import head_commit
from .render.elixir import render
from .render.names import known_as
from .store.lazy import materialize
from .store.persist import save_store
from .errors import MicroscopeError
from .testgen import ExUnitTest, exunit

__all__ = ["SessionBase", "compare"]


class SessionBase:
    """The analysis API over one recording's ``facts``."""

    def __init__(self, facts: Facts, *, audit: list[dict] | None = None,
                 notes: list[dict] | None = None):
        self.facts = facts
        self.store = facts.store    # the event store under the facts (widgets and reports read it)
        self._expectations: list[tuple[Any, Callable]] = []   # (proc, rule), for exunit
        self.audit: list[dict] = list(audit or [])  # what assistants asked through MCP, who approved
        self._notes: list[dict] = list(notes or [])  # s.annotate(...), saved with the recording
        self._versions: list[dict] = []             # versions(), as last known

    # -- tables

    @property
    def syntax(self) -> str:
        """How terms are written in tables: ``"elixir"`` (default) or ``"erlang"``."""
        return self.facts.syntax

    @syntax.setter
    def syntax(self, value: str) -> None:
        self.facts.syntax = value

    @property
    def events(self) -> pd.DataFrame:
        """Every recorded event, one row each (columns as in ARCHITECTURE.md)."""
        return self.facts.events

    def messages(self, receivers: list[Any] | None = None) -> pd.DataFrame:
        """One row per message: each send joined to its receive; lost ones marked.

        ``receivers`` (names or pids) keeps the messages sent to or received by
        them, plus every send to a dead process; on a large recording that is
        much faster than the whole table.

        ``latency_us`` runs from send to the receive event, which marks
        arrival on OTP 27+ but, before, the moment the receiver moved it out
        of its signal queue. ``wait_us`` runs from send to the start of the
        callback that handled it (GenServers): the time it really waited,
        which grows with a backlog; ``handled_seq`` is that callback's event.
        """
        return self.facts.messages(receivers)

    def calls(self) -> pd.DataFrame:
        """One row per traced call: args, result or exception, duration."""
        return self.facts.calls()

    def states(self, proc: Any = None) -> pd.DataFrame:
        """One row per GenServer transition of ``proc`` (all if None): before/after.

        A process that is alive but did nothing while recording has no rows
        (and a warning says so); one the node never had raises QueryError."""
        return self.facts.states(proc)

    def lines(self, proc: Any = None, label: Any = None) -> pd.DataFrame:
        """One row per ``BeamMicroscope.inspect_line`` call (the Elixir hooks
        package): where it ran (mfa, file, line), its label, and ``binding``,
        the local variables as a dict. ``proc`` and ``label`` narrow it."""
        return self.facts.lines(proc, label)

    def supervision_tree(self) -> pd.DataFrame:
        """The process tree as the recording saw it (a live session reads the node's)."""
        return self.facts.recorded_tree()

    def annotate(self, target: Any, text: str, author: str | None = None) -> dict:
        """Pin a note to ``target``: an event seq, a row of ``findings()``, a row of
        ``explain().causes``, or a ``(start, end)`` range of seqs or times. It
        shows on every widget of this recording (open ones at once), in
        ``annotations()``, in reports, and is saved with the recording.
        ``author``: default ``$MICROSCOPE_AUTHOR``, else the login name."""
        note = make_annotation(self.facts, target, text, author, len(self._notes) + 1)
        self._notes.append(note)
        notify(self)
        return dict(note)

    def annotations(self) -> pd.DataFrame:
        """Every note: id, target, seq, end_seq, pid, name, text, author, created_at."""
        return annotations_frame(self._notes)

    # -- analysis

    @property
    def query(self) -> Query:
        """message_flow, state_timeline, execution_path, events_around, trace_message."""
        return Query(self.facts)

    def time_travel(self) -> History:
        """A cursor over the recording: ``snapshot_at(t)``, ``step(+1/-1)``, ``diff(t1, t2)``."""
        return self.facts.history()

    def findings(self, grouped: bool = True) -> pd.DataFrame:
        """kind, severity, pid, name, summary, first_seq, evidence (event seqs),
        count and last_seq: one row per kind of trouble per process (a
        deadlock that recurred is one row); ``grouped=False``: every occurrence."""
        return findings_table(self.facts, grouped)

    def explain(self, question: str | None = None, *, proc: Any = None) -> Explanation:
        """Why things went as they did: ``.text`` (a paragraph: what happened,
        why, what to do) and ``.causes`` (ranked, each with evidence seqs).
        Names in ``question`` (or ``proc``) put the causes about them first."""
        return explain(self.facts, question, proc=proc)

    def expect(self, proc: Any, rule: Callable) -> pd.DataFrame:
        """Transitions of ``proc`` that broke ``rule``; each becomes a ``state_violation`` finding.

        ``rule(before, message, after) -> bool | str``, or an expected-state
        function ``rule(before, message) -> expected_after``.
        """
        violations = check_expectation(self.states(proc), rule, self.syntax)
        self._expectations.append((proc, rule))
        described = getattr(rule, "__name__", "rule")
        for row in violations.itertuples(index=False):
            self.facts.expectation_findings.append(Finding(
                "state_violation", "error", row.pid, row.name,
                f"{known_as(row.name, row.pid)} broke {described} on {row.callback}"
                f"({row.message_text}): {row.reason}", int(row.seq), [int(row.seq)]))
        return violations

    def anomalies(self, baseline: "SessionBase | None" = None) -> pd.DataFrame:
        """What behaves unlike its baseline (a recording of a good run, or by
        default the earlier half of this one): callback latency per process
        and message shape, message rates between named processes, state size.
        Robust z-scores and rank tests (scipy); evidence seqs per row."""
        return anomalies(self.facts, baseline.facts if baseline is not None else None)

    def metrics(self) -> pd.DataFrame:
        """Per process over time, tidy: ts, seq, pid, name, metric (mailbox_len,
        callback_ms, gc_ms, events_per_s), value, detail."""
        return metrics(self.facts)

    def dashboard(self, procs: list[str] | None = None) -> Dashboard:
        """A plotly dashboard of ``metrics()`` (mailbox length, callback latency by
        message shape, GC pauses) with findings marked; shows offline too."""
        return dashboard(self.facts, procs)

    def overview(self, *, top: int = 10) -> Any:
        """A ``SystemOverview`` widget: on a live ``Session``, the node at a glance
        like observer's first tab (schedulers' utilisation, memory by category,
        the largest ETS tables, the busiest ports, the top ``top`` processes by
        mailbox, memory and reductions; ``.refresh()``, ``.live = True``); here,
        the tops as the recording sampled them, at a time its slider picks. A
        click on a process shows its details, and the tree is one tab away."""
        from .widgets.overview import SystemOverview

        return SystemOverview(self, top=top)

    def exunit(self, proc: Any, *, between: tuple[int, int] | None = None,
               mode: str = "reproduce", module: str | None = None) -> ExUnitTest:
        """An ExUnit test that replays ``proc``'s recorded messages against its
        own module and asserts each recorded state (``.source``, ``.write(path)``).

        ``mode="reproduce"`` asserts what happened, a crash included (passes
        while the bug is there); ``"regression"`` asserts that the process
        survives the message that crashed it, and the states that
        expected-state rules given to ``s.expect(proc, rule)`` compute (fails
        until the bug is fixed). ``between=(first_seq, last_seq)`` narrows the
        replay; ``module`` names the GenServer's module when the recording
        cannot tell."""
        rules = [rule for p, rule in self._expectations if str(p) == str(proc)]
        return exunit(self.facts, proc, between=between, mode=mode, module=module, rules=rules)

    def sql(self, query: str) -> pd.DataFrame:
        """DuckDB SQL over ``events``, ``messages``, ``states`` and ``calls`` (terms as text)."""
        import duckdb

        con = duckdb.connect()
        try:
            con.register("events", materialize(self.events.drop(columns=["term"]))
                         .astype({"kind": str}))
            con.register("messages", materialize(self.messages().drop(columns=["term"])))
            states = self.states()
            for column in ("message", "before", "after", "reply"):
                states[column] = [None if v is None else render(v, self.syntax, 500)
                                  for v in states[column]]
            con.register("states", states)
            calls = self.calls()
            for column in ("args", "result", "exception"):
                calls[column] = [None if v is None else render(v, self.syntax, 500)
                                 for v in calls[column]]
            con.register("calls", calls)
            return con.execute(query).df()
        except duckdb.Error as exc:
            raise MicroscopeError(f"SQL failed: {exc}".splitlines()[0]) from None
        finally:
            con.close()

    # -- persistence and reports

    def versions(self) -> pd.DataFrame:
        """Each module the recording ran (its GenServers, its call-traced modules):
        md5, application and its version, source path, and the git commit of
        the checkout the source is in (when it is in one on this machine)."""
        return pd.DataFrame(self._versions, columns=VERSION_COLUMNS)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write a self-describing directory (Parquet + metadata.json); never the cookie.
        Whole or not at all: a save killed midway leaves ``path`` as it was. Where a
        recording already is, it refuses unless ``overwrite=True`` (replaced whole)."""
        return save_store(self.store, path, self._metadata(), overwrite=overwrite)

    def _metadata(self) -> dict[str, Any]:
        return {
            "audit": list(self.audit),
            "modules": self.versions().astype(object).where(
                lambda t: t.notna(), None).to_dict("records"),
            "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "microscope_version": _version(),
            # the notebook's own checkout; the app's commits are per module (versions())
            "notebook_git_commit": head_commit(),
            "dropped": self.store.dropped,
            "seen": self.store.seen,
            "annotations": list(self._notes),
            "tree": self.facts.initial_tree_rows(),
        }

    def report(self, path: str | Path, title: str | None = None, *, question: str | None = None,
               frames: int = 200) -> Path:
        """Write one self-contained HTML file (works offline, opens in any browser):
        the explanation (of ``question`` if given), findings with evidence,
        annotations, and the sequence diagram, timeline, time travel and
        supervision tree live. ``frames``: how many positions the time-travel
        slider can visit with no kernel (evenly spread, plus every finding and
        annotation)."""
        from .report import write_report

        return write_report(self, Path(path), title=title, question=question, frames=frames)

    def to_perfetto(self, path: str | Path) -> Path:
        """Write the recording as a trace ui.perfetto.dev and chrome://tracing open
        (JSON trace events): a track per process, a slice per callback and traced
        call, a flow arrow per message from its send to the callback that
        handled it, an instant per exit and finding; µs since the recording began."""
        from .report.perfetto import write_perfetto

        return write_perfetto(self, path)


def compare(before: SessionBase, after: SessionBase) -> Comparison:
    """What changed between two recordings (a session each, live or saved):
    modules (md5 and commit), findings, causes, message rates, transitions,
    and anomalies of ``after`` against ``before`` as its baseline."""
    return compare_facts(before.facts, after.facts, (before.versions(), after.versions()))


def _version() -> str:
    try:
        return importlib.metadata.version("microscope-jupyter")
    except importlib.metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown"
