"""EventStore: append-only columns of trace events, decoded in bulk, rendered lazily.

    store = EventStore()
    store.add_source("agent-1", node="demo@host", time_offset=..., native_per_second=10**9)
    store.append_batch("agent-1", headers, payloads, defs)   # from the agent, as is
    store.frame()                                            # pandas, one row per event

The hot path (``append_batch``) is one ``np.frombuffer`` over the headers,
an id remap, and keeping the payload blob by reference: no per-event Python
work. Payloads are decoded and rendered only when a frame is asked for, and
each chunk's decoded frame is cached so a growing recording costs only its
new events. When the raw bytes pass ``memory_budget``, the oldest chunks move
to disk (``np.memmap`` headers, memory-mapped payload files) instead of
growing the kernel without bound.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..beam.terms import Atom, Pid
from ..errors import QueryError
from ..render.names import erlang_module_name, format_name
from .columns import RELATIONS, Chunk, RawColumns, RelationTable, Source, StoreParts
from .frame import PayloadRenderer, events_frame, id_text, text_column
from .ids import IdTable
from .lazy import PayloadSource
from .names import NameIndex
from .schema import HEADER_DTYPE, KINDS, kind_mask

__all__ = ["EventStore", "RawColumns", "StoreParts"]

log = logging.getLogger(__name__)

# How long a reader waits for a trace's start details (a 50k-process node
# sends them within a second or two of its start reply).
DETAILS_TIMEOUT_S = 30.0

# Rare kinds a live status line asks about: kept aside as batches land, so
# asking never builds the event frame.
_IS_LANDMARK = kind_mask("hook", "exit")


class EventStore:
    """All events of one session, from one or more agents (nodes)."""

    def __init__(self, memory_budget: int = 512 << 20, spill_dir: str | os.PathLike | None = None,
                 syntax: str = "elixir", text_limit: int = 200):
        self.memory_budget = memory_budget
        self.syntax = syntax
        self.text_limit = text_limit
        self._spill_dir = Path(spill_dir) if spill_dir else None
        self._lock = threading.RLock()
        self._sources: dict[str, Source] = {}
        self._chunks: list[Chunk] = []
        self._ids = IdTable()
        self._count = 0
        self._in_memory = 0
        # (node, pid, name atom, since): held when a trace began, from the seq before
        # its first event (-1 for the first trace), so a later trace's names do not
        # rewrite what the earlier one saw
        self._initial_names: list[tuple[str, Pid, Any, int]] = []
        # (pid id, "link" | "monitor", peer id) at each start: a link goes both ways
        self._initial_relations: list[tuple[int, str, int]] = []
        # pid ids traced from the start (those the agent reported relations of)
        self._initial_procs: set[int] = set()
        # sources whose initial names and relations are still on their way
        self._details_pending: set[str] = set()
        self._details_arrived = threading.Condition(self._lock)
        self._landmarks: list[tuple[int, str, int]] = []   # (seq, kind, pid id)
        self._frame_cache: pd.DataFrame | None = None
        self._frame_count, self._raw_cache = 0, None   # raw(): RawColumns, until the next batch
        self._names_cache: tuple[int, str, NameIndex] | None = None
        # Decoded payloads are memoised within a quarter of the memory budget.
        self._renderer = PayloadRenderer(syntax, text_limit, memory_budget // 4)

    def set_syntax(self, syntax: str) -> None:
        """Render terms as ``"elixir"`` (default) or ``"erlang"`` from now on."""
        if syntax not in ("elixir", "erlang"):
            raise ValueError(f"syntax must be 'elixir' or 'erlang', got {syntax!r}")
        with self._lock:
            self.syntax, self._frame_cache, self._names_cache = syntax, None, None
            self._renderer = PayloadRenderer(syntax, self.text_limit, self.memory_budget // 4)

    # ---------------------------------------------------------------- writing

    def add_source(self, key: str, node: str, time_offset: int, native_per_second: int,
                   names: list[tuple[Pid, Any]] = (),
                   relations: list[tuple[Pid, Any, Pid]] = (),
                   traced: list[Pid] = (), details_follow: bool = False) -> None:
        """A new agent (one trace on one node). With ``details_follow`` its names,
        links and monitors at start come later through ``add_details``, and
        readers of them wait until then (or until ``details_lost``)."""
        with self._lock:
            self._sources[key] = Source(node, time_offset, native_per_second,
                                         first_seq=self._count)
            if details_follow:
                self._details_pending.add(key)
            else:
                self.add_details(key, names, relations, traced)

    def add_details(self, key: str, names: list[tuple[Pid, Any]] = (),
                    relations: "RelationTable | list[tuple[Pid, Any, Pid]]" = (),
                    traced: list[Pid] = ()) -> None:
        """The registered names, links and monitors of a source's processes as its trace began."""
        if not isinstance(relations, RelationTable):
            relations = RelationTable.from_rows(relations)
        with self._lock:
            node = self._sources[key].node
            self._initial_procs.update(self._ids.intern_all(node, list(traced)).tolist())
            since = self._sources[key].first_seq - 1
            self._initial_names.extend((node, pid, name, since) for pid, name in names)
            ids = self._ids.intern_all(node, relations.pids)
            holder, peer = ids[relations.holder], ids[relations.peer]
            self._initial_procs.update(np.unique(holder).tolist())
            # Both sides report a monitor between two traced processes: once is enough.
            by = relations.relation == RELATIONS.index("monitored_by")
            rows = np.unique(np.stack([np.where(by, peer, holder),
                                       np.where(by, RELATIONS.index("monitor"), relations.relation),
                                       np.where(by, holder, peer)], axis=1).reshape(-1, 3), axis=0)
            self._initial_relations.extend((h, RELATIONS[r], p) for h, r, p in rows.tolist())
            self._names_cache = None
            self._details_pending.discard(key)
            self._details_arrived.notify_all()

    def details_lost(self, key: str) -> None:
        """A source's details will not come (its agent or connection went first)."""
        self.add_details(key)   # none: readers stop waiting for them

    def _await_details(self) -> None:
        with self._lock:
            if self._details_pending and not self._details_arrived.wait_for(
                    lambda: not self._details_pending, DETAILS_TIMEOUT_S):
                log.warning("the agent of %s never sent the names, links and monitors its "
                            "processes had at trace start; views go without them",
                            ", ".join(sorted(self._details_pending)))
                self._details_pending.clear()

    def append_batch(self, key: str, headers: bytes, payloads: bytes,
                     defs: list[tuple[int, Any]], seen: int | None = None,
                     dropped: int | None = None) -> int:
        """Add one agent batch; returns how many events it held."""
        with self._lock:
            source = self._sources[key]
            if defs:
                top = max(local for local, _ in defs)
                if top >= len(source.id_map):
                    grown = np.zeros(max(top + 1, 2 * len(source.id_map)), dtype=np.int64)
                    grown[: len(source.id_map)] = source.id_map
                    source.id_map = grown
                for local, term in defs:
                    source.id_map[local] = self._ids.intern(source.node, term)
            source.seen = source.seen if seen is None else seen
            source.dropped = source.dropped if dropped is None else dropped
            if not headers:
                return 0
            chunk = Chunk.from_batch(key, source.node, self._count, headers, payloads,
                                     source.id_map, source.time_offset, source.native_per_second)
            table = chunk.headers
            for offset in np.flatnonzero(_IS_LANDMARK[table["kind"]]):
                self._landmarks.append((self._count + int(offset),
                                        KINDS[int(table["kind"][offset])],
                                        int(table["pid"][offset])))
            self._chunks.append(chunk)
            self._count += len(table)
            self._in_memory += chunk.nbytes
            if self._in_memory > self.memory_budget:
                self._spill()
            return len(table)

    def _spill(self) -> None:
        """Move the oldest in-memory chunks to disk until under budget."""
        if self._spill_dir is None:
            self._spill_dir = Path(tempfile.mkdtemp(prefix="microscope-spill-"))
        for index, chunk in enumerate(self._chunks):
            if self._in_memory <= self.memory_budget * 0.75:
                break
            if chunk.spilled:
                continue
            self._in_memory -= chunk.nbytes
            chunk.spill(self._spill_dir / f"chunk-{chunk.seq_start}")

    def shift_clock(self, node: str, delta_ns: int, seqs: np.ndarray | None = None) -> None:
        """Move every event of ``node`` by ``delta_ns`` (a cluster's clock alignment),
        or only ``seqs``, each by its own ``delta_ns`` (an array alongside)."""
        with self._lock:
            for chunk in (c for c in self._chunks if c.node == node):
                ts = np.array(chunk.ts_ns)    # a copy: a spilled chunk's is read-only
                if seqs is None:
                    chunk.ts_ns = ts + np.int64(delta_ns)
                    continue
                mine = (seqs >= chunk.seq_start) & (seqs < chunk.seq_start + len(ts))
                ts[seqs[mine] - chunk.seq_start] += np.asarray(delta_ns)[mine]
                chunk.ts_ns = ts
            self._frame_cache = self._raw_cache = None

    # ---------------------------------------------------------------- reading

    @property
    def initial_names(self) -> list[tuple[str, Pid, str]]:
        """(node, pid, name) registered when each trace started, in the current syntax."""
        self._await_details()
        return [(node, pid, format_name(name, self.syntax) or str(name))
                for node, pid, name, _ in self._initial_names]

    @property
    def initial_procs(self) -> set[int]:
        """Pid ids known to be traced (and alive) when their trace started."""
        self._await_details()
        return set(self._initial_procs)

    @property
    def initial_relations(self) -> list[tuple[int, str, int]]:
        """(pid id, "link" or "monitor", peer id) as each trace started."""
        self._await_details()
        return list(self._initial_relations)

    def __len__(self) -> int:
        return self._count

    def landmarks(self, kind: str, since_seq: int = 0) -> list[tuple[int, int]]:
        """(seq, pid id) of every ``hook`` or ``exit`` event from ``since_seq`` on,
        without building the event frame (cheap enough for a live status line)."""
        with self._lock:
            return [(q, p) for q, k, p in self._landmarks if k == kind and q >= since_seq]

    @property
    def dropped(self) -> int:
        """Events the agents saw but did not keep (load shedding, limits)."""
        return sum(s.dropped for s in self._sources.values())

    @property
    def seen(self) -> int:
        return sum(s.seen for s in self._sources.values())

    @property
    def memory_bytes(self) -> int:
        return self._in_memory

    def recording_spans(self) -> list[tuple[int, int]]:
        """(first, last) wall-clock ns of each recording (agent batch source), in time order."""
        with self._lock:
            chunks = list(self._chunks)
        spans: dict[str, list[int]] = {}
        for c in chunks:
            if len(c.ts_ns):
                lo, hi = int(c.ts_ns.min()), int(c.ts_ns.max())
                span = spans.setdefault(c.source, [lo, hi])
                span[0], span[1] = min(span[0], lo), max(span[1], hi)
        return sorted((lo, hi) for lo, hi in spans.values())

    @property
    def spilled_chunks(self) -> int:
        return sum(1 for c in self._chunks if c.spilled)

    def raw(self) -> RawColumns:
        """All headers as flat arrays; cached until the next batch arrives."""
        with self._lock:
            chunks = list(self._chunks)
            cached = self._raw_cache
            if cached is not None and len(cached) == self._count:
                return cached
        nodes = sorted({c.node for c in chunks})
        node_index = {n: i for i, n in enumerate(nodes)}

        def cat(field: str, dtype) -> np.ndarray:
            if not chunks:
                return np.zeros(0, dtype=dtype)
            return np.concatenate([np.asarray(c.headers[field], dtype=dtype) for c in chunks])

        raw = RawColumns(
            kind=cat("kind", np.uint8), flags=cat("flags", np.uint8),
            pid=cat("pid", np.int64), peer=cat("peer", np.int64), mfa=cat("mfa", np.int64),
            ts_ns=(np.concatenate([np.asarray(c.ts_ns) for c in chunks]) if chunks
                   else np.zeros(0, dtype=np.int64)),
            aux=cat("aux", np.int64),
            chunk=(np.concatenate([np.full(len(c.headers), i, dtype=np.int32)
                                   for i, c in enumerate(chunks)]) if chunks
                   else np.zeros(0, dtype=np.int32)),
            pay_off=cat("pay_off", np.int64), pay_len=cat("pay_len", np.int64),
            node=(np.concatenate([np.full(len(c.headers), node_index[c.node], dtype=np.int16)
                                  for c in chunks]) if chunks else np.zeros(0, dtype=np.int16)),
            blobs=[c.payloads for c in chunks],
            node_names=nodes,
        )
        with self._lock:
            self._raw_cache = raw
        return raw

    def names(self) -> NameIndex:
        """Who held which name when (``store.names``); cached until the next batch."""
        key = (self._count, self.syntax)
        cached = self._names_cache
        if cached is not None and cached[:2] == key:
            return cached[2]
        raw = self.raw()
        initial = [(self._ids.of_pid(node, pid), name, since) for (node, pid, name), (*_, since)
                   in zip(self.initial_names, self._initial_names)]
        index = NameIndex(raw.kind, raw.pid, raw.peer, initial, self.id_text, self._ids.node_of)
        self._names_cache = (*key, index)
        return index

    def to_parts(self) -> StoreParts:
        self._await_details()
        raw = self.raw()
        blobs = [bytes(b) for b in raw.blobs]
        bases = np.cumsum([0] + [len(b) for b in blobs[:-1]], dtype=np.int64)
        headers = np.zeros(len(raw), dtype=HEADER_DTYPE)
        for name in ("kind", "flags", "pid", "peer", "mfa", "aux", "pay_len"):
            headers[name] = getattr(raw, name)
        headers["ts"] = raw.ts_ns
        if len(raw):
            headers["pay_off"] = bases[raw.chunk] + raw.pay_off
        return StoreParts(
            headers=headers, payloads=b"".join(blobs), nodes=raw.node,
            node_names=raw.node_names,
            ids=self._ids.with_nodes(),
            initial_names=list(self._initial_names),
            initial_relations=list(self._initial_relations),
            initial_procs=set(self._initial_procs),
            sources=[dict(key=key, node=s.node, time_offset=s.time_offset,
                          native_per_second=s.native_per_second, seen=s.seen, dropped=s.dropped)
                     for key, s in self._sources.items()],
            syntax=self.syntax)

    @classmethod
    def from_parts(cls, parts: StoreParts) -> "EventStore":
        store = cls(syntax=parts.syntax)
        for gid, (node, term) in enumerate(parts.ids, start=1):
            if store._ids.intern(node or "", term) != gid:
                raise ValueError(f"the saved ids are inconsistent at id {gid}")
        # a recording saved before names had a ``since`` held them all from the start
        store._initial_names = [tuple(n) if len(n) == 4 else (*n, -1)
                                for n in parts.initial_names]
        store._initial_relations = list(parts.initial_relations)
        store._initial_procs = set(parts.initial_procs)
        for s in parts.sources:
            store._sources[s["key"]] = Source(s["node"], s["time_offset"], s["native_per_second"],
                                               seen=s["seen"], dropped=s["dropped"])
        n = len(parts.headers)
        # A chunk has one node: split where the node changes.
        cuts = np.flatnonzero(np.diff(parts.nodes)) + 1
        for start, stop in zip(np.r_[0, cuts], np.r_[cuts, n]) if n else ():
            node = parts.node_names[int(parts.nodes[start])]
            headers = parts.headers[start:stop]
            store._chunks.append(Chunk(node, node, int(start), headers, parts.payloads,
                                        headers["ts"].astype(np.int64)))
        store._count = n
        return store

    def term_of(self, gid: int) -> Any:
        return self._ids.term(gid)

    def id_text(self, gid: int) -> str | None:
        return id_text(self._ids.term(gid), self.syntax)

    def frame(self) -> pd.DataFrame:
        """Every event as a DataFrame with the public columns plus ``_pid``/``_peer`` ids.

        ``term`` and ``text`` are lazy (``store.lazy``): built in a pass over
        the headers, a payload decoded when its row is read."""
        with self._lock:
            count = self._count
            if self._frame_cache is not None and self._frame_count == count:
                return self._frame_cache
            renderer = self._renderer
        id_texts = self.id_texts()
        raw = self.raw()
        frame = self._add_names(events_frame(raw, PayloadSource(raw, renderer), id_texts))
        with self._lock:
            self._frame_cache = frame
            self._frame_count = len(raw)
        return frame

    def _add_names(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The registered name each pid had at the moment of each event (``names()``)."""
        if not frame.empty and self.names().named():
            frame["name"] = text_column(*self.names().name_codes(frame["_pid"].to_numpy(),
                                                                 frame["seq"].to_numpy()))
        return frame

    def id_texts(self) -> np.ndarray:
        """Every interned id's text (pids, names, MFAs), indexed by id."""
        return self._ids.texts(self.syntax, {s.node for s in self._sources.values()})

    def pid_ids(self, proc: Any) -> set[int]:
        """Every pid id ``proc`` stands for: a pid text, or a registered name or
        module alias (in either syntax) with every pid that held it, restarts included."""
        text = str(proc)
        if text.startswith("<"):
            # Every pid an event names (as actor or peer) is interned: no need
            # to build the event frame for this.
            ids = self._ids.pids_with_text(text)
        else:
            wanted = {text, format_name(Atom(erlang_module_name(text)), self.syntax) or text}
            ids = self.names().pids_named(wanted)
        ids.discard(-1)
        ids.discard(0)
        if not ids:
            raise QueryError(f"no recorded process matches {proc!r}; pass a pid like "
                             "'<0.123.0>', a registered name, or a module alias")
        return {int(i) for i in ids}

    def payload_bytes(self, seq: int) -> bytes:
        """The raw payload of event ``seq`` (O(1): read through the flat header arrays)."""
        raw = self.raw()
        if not 0 <= seq < len(raw):
            raise QueryError(f"no event with seq {seq}; seqs run from 0 to {self._count - 1}")
        return raw.payload(seq)
