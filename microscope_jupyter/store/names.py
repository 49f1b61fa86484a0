"""Who held which registered name when: one index, one rule, for every reader.

    names = store.names()
    names.holder_at("Demo.WorkerB", 120, node)   # pid id holding it on node at seq 120 (0: nobody)
    names.name_at(pid_id, 120)                # its name then, or None
    names.names_at(pid_ids, seqs)             # the same for many at once (numpy)
    names.last_names()                        # pid id -> the last name it held
    names.pids_named({"Demo.WorkerB"})        # every pid that ever held it (restarts too)
    names.successions()                       # [(seq, new holder, name, old holder)]: restarts

The rule: a name is held from its ``register`` event (or from the start of
the trace, for names held then) until its ``unregister`` event or the
holder's ``exit``. A process still holds its name at its own exit event
and no longer from the next event on. Names are per node (a cluster's
nodes each have their own ``mic_relay``). Built once from the raw header
columns (no payload is decoded), in the store's current syntax.

A name is spelled one way wherever it shows: ``Sink``, also for a send
addressed to ``{Sink, :"b@host"}`` (``addressed_names``); which node's Sink
is the holder's pid's to say (``<0.9.0>@b@host``), or the node column's.
"""

from __future__ import annotations

import bisect
from typing import Any, Callable, Iterable

import numpy as np

from ..beam.terms import Atom
from ..render.names import format_name
from .schema import KIND_CODES

__all__ = ["NameIndex", "addressed_names"]

_REGISTER, _UNREGISTER, _EXIT = (KIND_CODES[k] for k in ("register", "unregister", "exit"))


class NameIndex:
    def __init__(self, kind: np.ndarray, pid: np.ndarray, peer: np.ndarray,
                 initial: Iterable[tuple], id_text: Callable[[int], str | None],
                 node_of: Callable[[int], str] = lambda gid: ""):
        # per pid: [(from_seq, name or None)]; per (node, name): [(from_seq, pid id or 0)]
        self._node_of = node_of
        self._spans: dict[int, list[tuple[int, str | None]]] = {}
        self._holders: dict[tuple[str, str], list[tuple[int, int]]] = {}
        # (gid, name[, since]): held when a trace began, from ``since`` (-1: the start)
        later = sorted(((row[2] if len(row) > 2 else -1), row[0], row[1]) for row in initial)
        while later and later[0][0] < 0:
            _, gid, name = later.pop(0)
            self._hold(-1, gid, name)
        rows = np.flatnonzero(np.isin(kind, (_REGISTER, _UNREGISTER, _EXIT)))
        for seq, k, gid, other in zip(rows.tolist(), kind[rows].tolist(), pid[rows].tolist(),
                                      peer[rows].tolist()):
            while later and later[0][0] < seq:       # a later trace's names, in seq order
                self._take_over(*later.pop(0))
            if k == _REGISTER:
                self._hold(seq, gid, id_text(other))
            elif k == _UNREGISTER:
                self._release(seq, gid)
            else:
                self._release(seq + 1, gid)
        for row in later:
            self._take_over(*row)
        self._span_seqs = {g: [s for s, _ in spans] for g, spans in self._spans.items()}
        self._holder_seqs = {n: [s for s, _ in held] for n, held in self._holders.items()}
        self._search: tuple | None = None   # names_at's sorted span keys, built on first use

    def _take_over(self, since: int, gid: int, name: str | None) -> None:
        """A later trace found ``gid`` holding ``name``: unless it already does."""
        spans = self._spans.get(gid)
        if spans and spans[-1][1] == name:
            return
        self._hold(since, gid, name)

    def _hold(self, seq: int, gid: int, name: str | None) -> None:
        if gid <= 0 or not name:
            return
        self._spans.setdefault(gid, []).append((seq, name))
        self._holders.setdefault((self._node_of(gid), name), []).append((seq, gid))

    def _release(self, seq: int, gid: int) -> None:
        spans = self._spans.get(gid)
        if not spans or spans[-1][1] is None:
            return
        name = spans[-1][1]
        spans.append((seq, None))
        held = self._holders[(self._node_of(gid), name)]
        if held[-1][1] == gid:
            held.append((seq, 0))

    def name_at(self, gid: int, seq: int) -> str | None:
        spans = self._spans.get(gid)
        if not spans:
            return None
        k = bisect.bisect_right(self._span_seqs[gid], seq) - 1
        return spans[k][1] if k >= 0 else None

    def names_at(self, gids: np.ndarray, seqs: np.ndarray) -> np.ndarray:
        """``name_at`` for many (pid id, seq) pairs at once: an object array, None
        where a process held no name. One search over (pid, seq) keys of every span."""
        names, codes = self.name_codes(gids, seqs)
        return names[codes]

    def name_codes(self, gids: np.ndarray, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``names_at`` as (names, codes): the names (None last) and, per pair,
        the index of its name; what a column of a million rows is built from."""
        gids = np.asarray(gids, dtype=np.int64)
        if not self._spans or not len(gids):
            return np.array([None], dtype=object), np.zeros(len(gids), dtype=np.int64)
        if self._search is None:
            rows = [(gid, seq, name) for gid, spans in self._spans.items() for seq, name in spans]
            holders = np.array([r[0] for r in rows], dtype=np.int64)
            starts = np.array([r[1] for r in rows], dtype=np.int64) + 1   # -1: held at start
            names = np.array([r[2] for r in rows] + [None], dtype=object)
            order = np.argsort(holders * (int(starts.max()) + 1) + starts, kind="stable")
            self._search = (holders[order], starts[order], names[np.r_[order, len(rows)]])
        holders, starts, names = self._search
        seqs = np.asarray(seqs, dtype=np.int64) + 1
        width = int(max(starts.max(), seqs.max())) + 1
        at = np.searchsorted(holders * width + starts, gids * width + seqs, side="right") - 1
        own = (at >= 0) & (holders[np.maximum(at, 0)] == gids)
        return names, np.where(own, at, len(holders))

    def last_names(self) -> dict[int, str]:
        """Each process that held a name: the last one it held (kept after it let go)."""
        return {gid: name for gid, spans in self._spans.items()
                for name in [next((n for _, n in reversed(spans) if n), None)] if name}

    def holder_at(self, name: str | None, seq: int, node: str = "") -> int:
        key = (node, name)
        held = self._holders.get(key) if name else None
        if not held:
            return 0
        k = bisect.bisect_right(self._holder_seqs[key], seq) - 1
        return held[k][1] if k >= 0 else 0

    def spans(self, gid: int) -> list[tuple[int, str | None]]:
        """[(from_seq, name or None)] of one process, in order (-1: at the start)."""
        return list(self._spans.get(gid, ()))

    def successions(self) -> list[tuple[int, int, str, int]]:
        """(register seq, new holder, name, previous holder) each time a name
        passed from one process to another on the same node, in seq order:
        the raw material of a restart. A namesake on another node is no
        successor (each node has its own names)."""
        out = []
        for (_, name), held in self._holders.items():
            previous = 0
            for seq, gid in held:
                if gid and previous and gid != previous:
                    out.append((seq, gid, name, previous))
                previous = gid or previous
        return sorted(out)

    def pids_named(self, names: set[str]) -> set[int]:
        return {gid for (_, name), held in self._holders.items() if name in names
                for _, gid in held if gid > 0}

    def named(self) -> dict[int, list[tuple[int, str | None]]]:
        """Every process that held a name, with its spans."""
        return {gid: list(spans) for gid, spans in self._spans.items()}


def addressed_names(store: Any, texts: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``texts[ids]`` (``store.id_texts()``), with each ``{Name, Node}`` address
    spelled as its name, as the name column spells the process holding it (not
    ``Name@Node``). One look per distinct id."""
    unique, back = np.unique(ids, return_inverse=True)
    spelled = texts[unique].copy()
    for k, gid in enumerate(unique.tolist()):
        term = store.term_of(gid) if gid > 0 else None
        if isinstance(term, tuple) and len(term) == 2 and isinstance(term[0], Atom):
            spelled[k] = format_name(term[0], store.syntax)
    return spelled[back]
