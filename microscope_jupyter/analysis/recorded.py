"""Everything that works on a recording, live or loaded from disk.

``Session`` (attached to a node), ``OfflineSession`` (``mic.load(path)``,
in ``saved.py``) and ``Cluster`` all inherit this, so every query, time-travel step, expectation and widget
behaves the same with or without a node.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import logging
import subprocess
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import MicroscopeError, QueryError
from ..render.elixir import render
from ..render.names import known_as
from ..store import joins
from ..store.event_store import EventStore
from ..store.persist import load_store, save_store
from ..store.lazy import materialize
from ..store.schema import EVENT_COLUMNS
from .annotations import annotations_frame, make_annotation, notify
from .anomalies import anomalies
from .compare import VERSION_COLUMNS
from .expect import check_expectation
from .explain import Explanation, explain
from .exunit import ExUnitTest, exunit
from .findings import Finding, detect, findings_frame
from .query import Query
from .history import History
from .metrics import Dashboard, dashboard, metrics

__all__ = ["SessionBase", "load_recording"]

log = logging.getLogger(__name__)


class SessionBase:
    """The analysis API over an EventStore."""

    store: EventStore

    def _init_recorded(self, store: EventStore) -> None:
        self.store = store
        self._expect_findings: list[Finding] = []
        self._expectations: list[tuple[Any, Callable]] = []   # (proc, rule), for exunit
        self.audit: list[dict] = []   # what assistants asked through MCP, and who approved
        self._notes: list[dict] = []  # s.annotate(...), saved with the recording
        self._cache: dict[str, tuple[int, Any]] = {}

    def _cached(self, key: str, build: Callable[[], Any]) -> Any:
        size = len(self.store)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == size:
            return hit[1]
        value = build()
        self._cache[key] = (size, value)
        return value

    # -- syntax

    @property
    def syntax(self) -> str:
        """How terms are written in tables: ``"elixir"`` (default) or ``"erlang"``."""
        return self.store.syntax

    @syntax.setter
    def syntax(self, value: str) -> None:
        try:
            self.store.set_syntax(value)
        except ValueError as exc:
            raise MicroscopeError(str(exc)) from None
        self._cache.clear()

    # -- tables

    @property
    def events(self) -> pd.DataFrame:
        """Every recorded event, one row each (columns as in design.md)."""
        return self.store.frame()[EVENT_COLUMNS]

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
        if receivers is not None:
            ids = np.array(sorted({g for r in receivers for g in self.pids(r)}), dtype=np.int64)
            return _handed_out(self._cached(f"messages to {ids.tolist()}",
                                            lambda: self._messages(ids)))
        return _handed_out(self._cached("messages", self._messages))

    def _messages(self, receivers: np.ndarray | None = None) -> pd.DataFrame:
        table = joins.messages(self.store, receivers)
        tt = self.time_travel()
        raw = tt.raw
        received = table["receive_seq"].to_numpy(dtype=np.float64, na_value=np.nan)
        known = ~np.isnan(received)
        handled = np.full(len(table), -1, dtype=np.int64)
        handled[known] = tt.handled_seqs()[received[known].astype(np.int64)]
        taken = handled >= 0
        table["handled_seq"] = pd.arrays.IntegerArray(np.maximum(handled, 0), ~taken)
        # A state event is stamped when its callback returned; aux is how long it ran.
        # (Differences in int64 ns: epoch ns as floats lose a quarter of a µs.)
        sent = table["sent_at"].to_numpy(dtype="datetime64[ns]")
        taken &= ~np.isnat(sent)
        wait = np.full(len(table), np.nan)
        wait[taken] = (raw.ts_ns[handled[taken]] - raw.aux[handled[taken]]
                       - sent[taken].view(np.int64)) / 1000
        table["wait_us"] = wait
        return table

    def calls(self) -> pd.DataFrame:
        """One row per traced call: args, result or exception, duration."""
        return _handed_out(self._cached("calls", lambda: joins.calls(self.store)))

    def annotate(self, target: Any, text: str, author: str | None = None) -> dict:
        """Pin a note to ``target``: an event seq, a row of ``findings()``, a row of
        ``explain().causes``, or a ``(start, end)`` range of seqs or times. It
        shows on every widget of this recording (open ones at once), in
        ``annotations()``, in reports, and is saved with the recording.
        ``author``: default ``$MICROSCOPE_AUTHOR``, else the login name."""
        note = make_annotation(self, target, text, author, len(self._notes) + 1)
        self._notes.append(note)
        notify(self)
        return dict(note)

    def annotations(self) -> pd.DataFrame:
        """Every note: id, target, seq, end_seq, pid, name, text, author, created_at."""
        return annotations_frame(self._notes)

    def lines(self, proc: Any = None, label: Any = None) -> pd.DataFrame:
        """One row per ``BeamMicroscope.inspect_line`` call (the Elixir hooks
        package): where it ran (mfa, file, line), its label, and ``binding``,
        the local variables as a dict. ``proc`` and ``label`` narrow it."""
        table = joins.lines(self.store, None if proc is None else self.pids(proc))
        if label is not None:
            # A boolean array, never a list: an empty list would select no columns.
            keep = np.array([x == label for x in table["label"]], dtype=bool)
            table = table[keep].reset_index(drop=True)
        return table

    def states(self, proc: Any = None) -> pd.DataFrame:
        """One row per GenServer transition of ``proc`` (all if None): before/after.

        A process that is alive but did nothing while recording has no rows
        (and a warning says so); one the node never had raises QueryError."""
        if proc is None:
            return _handed_out(self._cached("states", lambda: joins.states(self.store, None)))
        try:
            ids = self.pids(proc)
        except QueryError:
            silent = self._alive_elsewhere(proc)
            if silent is None:
                raise
            log.warning("%s is alive on the node as %s but has no events in this recording: "
                        "it was not traced, or did nothing; trace it with s.trace(%r)",
                        proc, silent, proc)
            return joins.states(self.store, set())
        return joins.states(self.store, ids)

    def _alive_elsewhere(self, proc: Any) -> str | None:
        """The live pid of ``proc`` when the node is here to ask (a live Session)."""
        return None

    def pids(self, proc: Any) -> set[int]:
        """The pid ids ``proc`` stands for in this recording: a pid, or every pid that
        held the name or module alias (restarts included); QueryError if none."""
        return self.store.pid_ids(proc)

    def supervision_tree(self) -> pd.DataFrame:
        """The process tree (a live session reads the node; a saved one, ``recorded_tree``)."""
        return self.recorded_tree()

    def recorded_tree(self) -> pd.DataFrame:
        """The process tree as the recording saw it: parent = the process that spawned it.

        Same columns as the live tree; status is alive/exited at the end of
        the recording, and a supervisor is a process that spawned and linked
        children.
        """
        events = self.events
        frame = self.store.frame()
        base = self._initial_tree()
        parent: dict[str, str] = {r["pid"]: r["parent"] for r in base if r.get("parent")}
        kinds: dict[str, str] = {r["pid"]: r["kind"] for r in base}
        initial: dict[str, Any] = {r["pid"]: r.get("initial_call") for r in base}
        apps: dict[str, Any] = {r["pid"]: r.get("application") for r in base}
        last_name = {r["pid"]: r["name"] for r in base if r.get("name")}
        for kind, pid, peer in zip(frame["kind"], frame["pid"], frame["peer"]):
            if kind == "spawn" and isinstance(peer, str):
                parent[peer] = pid
            elif kind == "link" and isinstance(peer, str) and parent.get(peer) == pid:
                kinds[pid] = "supervisor"
        last_name.update(frame.dropna(subset=["name"]).groupby("pid")["name"].last().to_dict())
        exited = set(events.loc[events["kind"] == "exit", "pid"])
        pids = list(dict.fromkeys([r["pid"] for r in base] + list(frame["pid"].dropna())
                                  + list(parent)))
        for _, pid, name in self.store.initial_names:
            if str(pid) not in pids:
                pids.append(str(pid))
            last_name.setdefault(str(pid), name)
        rows = [(pid, last_name.get(pid), parent.get(pid), kinds.get(pid, "worker"),
                 initial.get(pid), "exited" if pid in exited else "alive", 0, 0, apps.get(pid), 0)
                for pid in pids]
        return pd.DataFrame(rows, columns=["pid", "name", "parent", "kind", "initial_call", "status",
                                           "message_queue_len", "memory", "application",
                                           "reductions"])

    def _initial_tree(self) -> list[dict]:
        """The process tree when recording began (saved with the session)."""
        return []

    # -- analysis

    @property
    def query(self) -> Query:
        """message_flow, state_timeline, execution_path, events_around, trace_message."""
        return Query(self)

    def time_travel(self) -> History:
        """A cursor over the recording: ``snapshot_at(t)``, ``step(+1/-1)``, ``diff(t1, t2)``."""
        return self._cached("time_travel", lambda: History(self.store))

    def expect(self, proc: Any, rule: Callable) -> pd.DataFrame:
        """Transitions of ``proc`` that broke ``rule``; each becomes a ``state_violation`` finding.

        ``rule(before, message, after) -> bool | str``, or an expected-state
        function ``rule(before, message) -> expected_after``.
        """
        violations = check_expectation(self.states(proc), rule, self.store.syntax)
        self._expectations.append((proc, rule))
        described = getattr(rule, "__name__", "rule")
        for row in violations.itertuples(index=False):
            self._expect_findings.append(Finding(
                "state_violation", "error", row.pid, row.name,
                f"{known_as(row.name, row.pid)} broke {described} on {row.callback}"
                f"({row.message_text}): {row.reason}", int(row.seq), [int(row.seq)]))
        return violations

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
        return exunit(self, proc, between=between, mode=mode, module=module, rules=rules)

    def explain(self, question: str | None = None, *, proc: Any = None) -> Explanation:
        """Why things went as they did: ``.text`` (a paragraph: what happened,
        why, what to do) and ``.causes`` (ranked, each with evidence seqs).
        Names in ``question`` (or ``proc``) put the causes about them first."""
        return explain(self, question, proc=proc)

    def anomalies(self, baseline: "SessionBase | None" = None) -> pd.DataFrame:
        """What behaves unlike its baseline (a recording of a good run, or by
        default the earlier half of this one): callback latency per process
        and message shape, message rates between named processes, state size.
        Robust z-scores and rank tests (scipy); evidence seqs per row."""
        return anomalies(self, baseline)

    def metrics(self) -> pd.DataFrame:
        """Per process over time, tidy: ts, seq, pid, name, metric (mailbox_len,
        callback_ms, gc_ms, events_per_s), value, detail."""
        return metrics(self)

    def dashboard(self, procs: list[str] | None = None) -> Dashboard:
        """A plotly dashboard of ``metrics()`` (mailbox length, callback latency by
        message shape, GC pauses) with findings marked; shows offline too."""
        return dashboard(self, procs)

    def live_holder(self, name: str) -> str | None:
        """The pid holding ``name`` on the live node now; None when detached."""
        return self._alive_elsewhere(name)

    def findings(self, grouped: bool = True) -> pd.DataFrame:
        """kind, severity, pid, name, summary, first_seq, evidence (event seqs),
        count and last_seq: one row per kind of trouble per process (a
        deadlock that recurred is one row); ``grouped=False``: every occurrence."""
        detected = self._cached("findings", lambda: detect(self))
        seen = set()
        unique = []
        for f in detected + self._expect_findings:
            key = (f.kind, f.first_seq, f.summary)
            if key not in seen:
                seen.add(key)
                unique.append(f)
        return findings_frame(unique, grouped)

    def sql(self, query: str) -> pd.DataFrame:
        """DuckDB SQL over ``events``, ``messages``, ``states`` and ``calls`` (terms as text)."""
        import duckdb

        con = duckdb.connect()
        try:
            con.register("events", materialize(self.events.drop(columns=["term"]))
                         .astype({"kind": str}))
            messages = materialize(self.messages().drop(columns=["term"]))
            con.register("messages", messages)
            states = self.states()
            for column in ("message", "before", "after", "reply"):
                states[column] = [None if v is None else _text(v, self.store.syntax)
                                  for v in states[column]]
            con.register("states", states)
            calls = self.calls()
            for column in ("args", "result", "exception"):
                calls[column] = [None if v is None else _text(v, self.store.syntax)
                                 for v in calls[column]]
            con.register("calls", calls)
            return con.execute(query).df()
        except duckdb.Error as exc:
            raise MicroscopeError(f"SQL failed: {exc}".splitlines()[0]) from None
        finally:
            con.close()

    # -- persistence

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write a self-describing directory (Parquet + metadata.json); never the cookie.
        Whole or not at all: a save killed midway leaves ``path`` as it was. Where a
        recording already is, it refuses unless ``overwrite=True`` (replaced whole)."""
        return save_store(self.store, path, self._metadata(), overwrite=overwrite)

    def versions(self) -> pd.DataFrame:
        """Each module the recording ran (its GenServers, its call-traced modules):
        md5, application and its version, source path, and the git commit of
        the checkout the source is in (when it is in one on this machine)."""
        return pd.DataFrame(self._module_versions(), columns=VERSION_COLUMNS)

    def _module_versions(self) -> list[dict]:
        return []

    def _metadata(self) -> dict[str, Any]:
        return {
            "audit": list(self.audit),
            "modules": self._module_versions(),
            "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "microscope_version": _version(),
            # the notebook's own checkout; the app's commits are per module (versions())
            "notebook_git_commit": _git_commit(),
            "dropped": self.store.dropped,
            "seen": self.store.seen,
            "annotations": list(self._notes),
        }


def _text(value: Any, syntax: str) -> str:
    return render(value, syntax, 500)


def _version() -> str:
    try:
        return importlib.metadata.version("microscope-jupyter")
    except importlib.metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


_PANDAS_MAJOR = int(pd.__version__.split(".")[0])


def _handed_out(table: pd.DataFrame) -> pd.DataFrame:
    """A cached table as the caller's own: with copy-on-write (pandas 3) a
    shallow copy already is, and costs no memory; else a deep one."""
    return table.copy(deep=_PANDAS_MAJOR < 3)


def load_recording(path: str | Path, partial: bool = False
                   ) -> tuple[EventStore, dict[str, Any], list[str]]:
    """The store and metadata ``s.save(path)`` wrote, and what is missing from it
    (``partial=True`` only); RecordingError, one line, when it cannot be read."""
    return load_store(path, partial=partial)
