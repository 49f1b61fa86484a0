"""Facts: what one recording holds, built from its store alone, memoised.

    facts = Facts(store)                    # a live session's, a saved one's, a cluster's
    facts.events; facts.messages(); facts.states("Demo.WorkerB"); facts.history()
    facts.live_holder("Demo.WorkerB")       # None unless a live port is plugged in

Every detector, cause, explanation, comparison and generated test takes a
``Facts``: analysis works on the data, never on a session. A session (live,
saved, cluster) holds one and is a thin facade over it. The only way back to
a node is ``live``, an optional port a live session plugs in, so an analysis
that wants a live lookup (is this name held by a new pid now?) says so, and
gets None when there is no node to ask.

Tables are memoised against the store's length: a live recording that grows
is read again, a finished one is read once.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Protocol

import numpy as np
import pandas as pd

from ..errors import MicroscopeError, QueryError
from ..store import joins
from ..store.event_store import EventStore
from ..store.schema import EVENT_COLUMNS
from .history import History

__all__ = ["Facts", "LivePort", "handed_out"]

log = logging.getLogger(__name__)


class LivePort(Protocol):
    """What analysis may ask a live node: nothing else."""

    def holder(self, proc: Any) -> str | None:
        """The pid (text) that holds name ``proc`` on the node now, or that
        pid itself if it is alive; None when nothing does or the node is gone."""


class Facts:
    """One recording's data, memoised: events, messages (with the callback that
    handled each and how long it waited), states, calls, lines, the name
    index, the history and the process tree as recorded."""

    def __init__(self, store: EventStore, *, live: LivePort | None = None,
                 node: str | None = None):
        self.store = store
        self.live = live
        self.node = node
        self._initial_tree: Any = None
        # Findings that come from the user, not the data (s.expect rules).
        self.expectation_findings: list = []
        self._cache: dict[str, tuple[int, Any]] = {}

    def __repr__(self) -> str:
        return f"<Facts {len(self.store)} events{' live' if self.live else ''}>"

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()``, once per length of the store."""
        size = len(self.store)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == size:
            return hit[1]
        value = build()
        self._cache[key] = (size, value)
        return value

    def forget(self) -> None:
        """Drop every memoised table: for a store changed in place (a cluster's
        clocks aligned), not for one that grew (that is noticed)."""
        self._cache.clear()

    # -- how terms read

    @property
    def syntax(self) -> str:
        return self.store.syntax

    @syntax.setter
    def syntax(self, value: str) -> None:
        try:
            self.store.set_syntax(value)
        except ValueError as exc:
            raise MicroscopeError(str(exc)) from None
        self._cache.clear()

    # -- the tables (each caller gets its own copy of a memoised one)

    @property
    def events(self) -> pd.DataFrame:
        return self.store.frame()[EVENT_COLUMNS]

    def messages(self, receivers: Any = None) -> pd.DataFrame:
        if receivers is not None:
            ids = np.array(sorted({g for r in receivers for g in self.pids(r)}), dtype=np.int64)
            return handed_out(self.cached(f"messages to {ids.tolist()}",
                                          lambda: self._messages(ids)))
        return handed_out(self.cached("messages", self._messages))

    def _messages(self, receivers: np.ndarray | None = None) -> pd.DataFrame:
        table = joins.messages(self.store, receivers)
        tt = self.history()
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
        return handed_out(self.cached("calls", lambda: joins.calls(self.store)))

    def lines(self, proc: Any = None, label: Any = None) -> pd.DataFrame:
        table = joins.lines(self.store, None if proc is None else self.pids(proc))
        if label is not None:
            # A boolean array, never a list: an empty list would select no columns.
            keep = np.array([x == label for x in table["label"]], dtype=bool)
            table = table[keep].reset_index(drop=True)
        return table

    def states(self, proc: Any = None) -> pd.DataFrame:
        """Every transition of ``proc`` (all if None). A process alive on the
        node that did nothing while recording has no rows, and a warning says
        so; one the recording and the node never had raises QueryError."""
        if proc is None:
            return handed_out(self.cached("states", lambda: joins.states(self.store, None)))
        try:
            ids = self.pids(proc)
        except QueryError:
            silent = self.live_holder(proc)
            if silent is None:
                raise
            log.warning("%s is alive on the node as %s but has no events in this recording: "
                        "it was not traced, or did nothing; trace it with s.trace(%r)",
                        proc, silent, proc)
            return joins.states(self.store, set())
        return joins.states(self.store, ids)

    # -- names and processes

    def pids(self, proc: Any) -> set[int]:
        """The pid ids ``proc`` stands for: a pid, or every pid that held the
        name or module alias (restarts included); QueryError if none."""
        return self.store.pid_ids(proc)

    def live_holder(self, proc: Any) -> str | None:
        """Who holds ``proc`` on the live node now; None with no node to ask."""
        return self.live.holder(proc) if self.live is not None else None

    def history(self) -> History:
        return self.cached("history", lambda: History(self.store))

    @property
    def initial_tree(self) -> Any:
        """The node's process tree when recording began (rows, or a DataFrame):
        set by whoever started the first trace, or read from a saved recording."""
        return self._initial_tree

    @initial_tree.setter
    def initial_tree(self, tree: Any) -> None:
        self._initial_tree = tree
        self._cache.pop("recorded tree", None)

    def note_tree(self, tree: Any) -> None:
        """The node's process tree at a trace's start (rows, or a DataFrame): the
        first is the tree at the start; a later one adds the processes no
        earlier one had (so a second trace's processes have their parents too)."""
        rows = tree.astype(object).where(tree.notna(), None).to_dict("records") \
            if isinstance(tree, pd.DataFrame) else list(tree)
        known = {r.get("pid") for r in self.initial_tree_rows()}
        added = [r for r in rows if r.get("pid") not in known]
        if self._initial_tree is None or added:
            self.initial_tree = self.initial_tree_rows() + added

    def initial_tree_rows(self) -> list[dict]:
        tree = self._initial_tree
        if tree is None:
            return []
        if isinstance(tree, pd.DataFrame):
            return tree.astype(object).where(tree.notna(), None).to_dict("records")
        return list(tree)

    def recorded_tree(self) -> pd.DataFrame:
        """The process tree as the recording saw it: parent = the process that
        spawned it (the tree at the start where there was one); status is
        alive/exited at the end; a supervisor is a process that spawned and
        linked children. Same columns as a live session's tree."""
        return handed_out(self.cached("recorded tree", self._recorded_tree))

    def _recorded_tree(self) -> pd.DataFrame:
        frame = self.store.frame()
        base = self.initial_tree_rows()
        parent: dict[str, str] = {r["pid"]: r["parent"] for r in base if r.get("parent")}
        kinds: dict[str, str] = {r["pid"]: r["kind"] for r in base}
        initial: dict[str, Any] = {r["pid"]: r.get("initial_call") for r in base}
        apps: dict[str, Any] = {r["pid"]: r.get("application") for r in base}
        last_name = {r["pid"]: r["name"] for r in base if r.get("name")}
        # only spawns and links say whose a process is (a loop over every event: 0.5 s at 200k)
        linked = frame[frame["kind"].isin(["spawn", "link"]) & frame["peer"].notna()]
        for kind, pid, peer in zip(linked["kind"].to_numpy(dtype=object),
                                   linked["pid"].to_numpy(dtype=object),
                                   linked["peer"].to_numpy(dtype=object)):
            if kind == "spawn":
                parent[peer] = pid
            elif parent.get(peer) == pid:
                kinds[pid] = "supervisor"
        last_name.update(frame.dropna(subset=["name"]).groupby("pid")["name"].last().to_dict())
        exited = set(frame.loc[frame["kind"] == "exit", "pid"])
        pids = list(dict.fromkeys([r["pid"] for r in base]
                                  + frame["pid"].dropna().unique().tolist() + list(parent)))
        for _, pid, name in self.store.initial_names:
            if str(pid) not in pids:
                pids.append(str(pid))
            last_name.setdefault(str(pid), name)
        rows = [(pid, last_name.get(pid), parent.get(pid), kinds.get(pid, "worker"),
                 initial.get(pid), "exited" if pid in exited else "alive", 0, 0, apps.get(pid), 0)
                for pid in pids]
        return pd.DataFrame(rows, columns=TREE_COLUMNS)


TREE_COLUMNS = ["pid", "name", "parent", "kind", "initial_call", "status", "message_queue_len",
                "memory", "application", "reductions"]

_PANDAS_MAJOR = int(pd.__version__.split(".")[0])


def handed_out(table: pd.DataFrame) -> pd.DataFrame:
    """A memoised table as the caller's own: with copy-on-write (pandas 3) a
    shallow copy already is, and costs no memory; else a deep one."""
    return table.copy(deep=_PANDAS_MAJOR < 3)
