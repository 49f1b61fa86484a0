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

import mmap
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..beam.etf import decode
from ..beam.terms import Atom, Pid
from ..errors import DecodeError, QueryError
from ..render.elixir import render
from ..render.names import erlang_module_name, format_mfa_term, format_name
from .schema import AUX, EVENT_COLUMNS, FLAG_TRUNCATED, HEADER_DTYPE, KIND_CODES, KINDS

__all__ = ["EventStore", "STATE_UNKNOWN", "STATE_LARGE", "state_recorded"]

_MEMO_MAX = 200_000
_KIND_NAMES = np.array([KINDS.get(i, f"kind_{i}") for i in range(256)], dtype=object)
_STATE = KIND_CODES["state"]
_DROPPED = KIND_CODES["dropped"]
_MAILBOX = KIND_CODES["mailbox"]
# Rare kinds a live status line asks about: kept aside as batches land, so
# asking never builds the event frame.
_LANDMARKS = np.array([KIND_CODES[k] for k in ("hook", "exit")], dtype=np.uint8)
_MONITOR_MS = np.array([KIND_CODES["long_gc"], KIND_CODES["long_schedule"]], dtype=np.uint8)
_DURATION = np.array([KIND_CODES[k] for k, v in AUX.items() if v == "duration_ns"], dtype=np.uint8)
_COUNT = np.array([KIND_CODES[k] for k, v in AUX.items() if v == "count"], dtype=np.uint8)

# Where a state transition holds one of these instead of a state, the agent
# did not record it: before the hook had a base (UNKNOWN), or too large to
# copy out of the process on every callback (LARGE; its changes are kept).
STATE_UNKNOWN = Atom("$microscope_unknown")
STATE_LARGE = Atom("$microscope_large")


def state_recorded(state: Any) -> bool:
    """False for the placeholders of a state the agent did not copy."""
    return not (isinstance(state, Atom) and state in (STATE_UNKNOWN, STATE_LARGE))


@dataclass
class _Source:
    node: str
    time_offset: int
    native_per_second: int
    id_map: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    seen: int = 0
    dropped: int = 0
    batches: int = 0


@dataclass
class _Chunk:
    source: str
    node: str
    seq_start: int
    headers: np.ndarray      # HEADER_DTYPE, sorted by ts; pid/peer/mfa are global ids
    payloads: Any            # bytes, or an mmap once spilled
    ts_ns: np.ndarray        # wall clock, ns since the epoch
    frame: pd.DataFrame | None = None
    spilled: bool = False

    @property
    def nbytes(self) -> int:
        return 0 if self.spilled else self.headers.nbytes + len(self.payloads) + self.ts_ns.nbytes


@dataclass
class RawColumns:
    """Every event's header fields as flat numpy arrays (index == seq).

    What the time-travel index and persistence read: no payload is decoded
    until ``term(i)`` asks for it.
    """

    kind: np.ndarray
    flags: np.ndarray
    pid: np.ndarray
    peer: np.ndarray
    mfa: np.ndarray
    ts_ns: np.ndarray
    aux: np.ndarray
    chunk: np.ndarray
    pay_off: np.ndarray
    pay_len: np.ndarray
    node: np.ndarray
    blobs: list
    node_names: list

    def __len__(self) -> int:
        return len(self.kind)

    def payload(self, i: int) -> bytes:
        off, length = int(self.pay_off[i]), int(self.pay_len[i])
        return bytes(self.blobs[int(self.chunk[i])][off:off + length])

    def term(self, i: int) -> Any:
        return decode(self.payload(i)) if self.pay_len[i] else None


class EventStore:
    """All events of one session, from one or more agents (nodes)."""

    def __init__(self, memory_budget: int = 512 << 20, spill_dir: str | os.PathLike | None = None,
                 syntax: str = "elixir", text_limit: int = 200):
        self.memory_budget = memory_budget
        self.syntax = syntax
        self.text_limit = text_limit
        self._spill_dir = Path(spill_dir) if spill_dir else None
        self._lock = threading.RLock()
        self._sources: dict[str, _Source] = {}
        self._chunks: list[_Chunk] = []
        self._ids: list[Any] = [None]           # global id -> term
        self._id_index: dict[tuple, int] = {}   # (node, repr-key) -> global id
        self._count = 0
        self._in_memory = 0
        self._initial_names: list[tuple[str, Pid, Any]] = []  # (node, pid, name atom) at start
        # (pid id, "link" | "monitor", peer id) as each trace started: a link
        # goes both ways; a monitor is held by pid on peer.
        self._initial_relations: list[tuple[int, str, int]] = []
        # pid ids traced from the start (those the agent reported relations of)
        self._initial_procs: set[int] = set()
        self._landmarks: list[tuple[int, str, int]] = []   # (seq, kind, pid id)
        self._frame_cache: pd.DataFrame | None = None
        self._frame_chunks = 0
        self._raw_cache: RawColumns | None = None
        # Identical payloads (ticks, repeated messages) decode and render once.
        # Decoded terms are shared between rows: treat them as read-only.
        self._memo: dict[tuple[int, bytes], tuple[Any, str | None]] = {}

    def set_syntax(self, syntax: str) -> None:
        """Render terms as ``"elixir"`` (default) or ``"erlang"`` from now on."""
        if syntax not in ("elixir", "erlang"):
            raise ValueError(f"syntax must be 'elixir' or 'erlang', got {syntax!r}")
        with self._lock:
            self.syntax = syntax
            self._frame_cache = None
            self._memo.clear()
            for chunk in self._chunks:
                chunk.frame = None

    # ---------------------------------------------------------------- writing

    def add_source(self, key: str, node: str, time_offset: int, native_per_second: int,
                   names: list[tuple[Pid, Any]] = (),
                   relations: list[tuple[Pid, Any, Pid]] = (),
                   traced: list[Pid] = ()) -> None:
        with self._lock:
            self._sources[key] = _Source(node, time_offset, native_per_second)
            self._initial_procs.update(self._global_id(node, pid) for pid in traced)
            self._initial_names.extend((node, pid, name) for pid, name in names)
            held = set()
            for pid, relation, peer in relations:
                traced, other = self._global_id(node, pid), self._global_id(node, peer)
                self._initial_procs.add(traced)
                # Both sides report a monitor between two traced processes: once is enough.
                if str(relation) == "monitored_by":   # other monitors traced
                    held.add((other, "monitor", traced))
                else:
                    held.add((traced, str(relation), other))
            self._initial_relations.extend(sorted(held))

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
                    source.id_map[local] = self._global_id(source.node, term)
            source.batches += 1
            if seen is not None:
                source.seen = seen
            if dropped is not None:
                source.dropped = dropped
            if not headers:
                return 0
            raw = np.frombuffer(headers, dtype=HEADER_DTYPE)
            # Batches arrive in tracer-mailbox order; within a batch, put
            # events in clock order so seq follows time.
            order = np.argsort(raw["ts"], kind="stable")
            table = raw[order].copy()
            for column in ("pid", "peer", "mfa"):
                table[column] = source.id_map[table[column]]
            _normalise_aux(table, source.native_per_second)
            ts_ns = self._wall_ns(source, table["ts"])
            for offset in np.flatnonzero(np.isin(table["kind"], _LANDMARKS)):
                self._landmarks.append((self._count + int(offset),
                                        KINDS[int(table["kind"][offset])],
                                        int(table["pid"][offset])))
            chunk = _Chunk(key, source.node, self._count, table, payloads, ts_ns)
            self._chunks.append(chunk)
            self._count += len(table)
            self._in_memory += chunk.nbytes
            if self._in_memory > self.memory_budget:
                self._spill()
            return len(table)

    def _global_id(self, node: str, term: Any) -> int:
        key = _id_key(node, term)
        gid = self._id_index.get(key)
        if gid is None:
            gid = len(self._ids)
            self._ids.append(term)
            self._id_index[key] = gid
        return gid

    @staticmethod
    def _wall_ns(source: _Source, mono: np.ndarray) -> np.ndarray:
        per_second = source.native_per_second
        native = mono.astype(np.int64) + source.time_offset
        if per_second == 1_000_000_000:
            return native
        if 1_000_000_000 % per_second == 0:
            return native * (1_000_000_000 // per_second)
        return (native.astype(np.float64) * (1e9 / per_second)).astype(np.int64)

    def _spill(self) -> None:
        """Move the oldest in-memory chunks to disk until under budget."""
        if self._spill_dir is None:
            self._spill_dir = Path(tempfile.mkdtemp(prefix="microscope-spill-"))
        for index, chunk in enumerate(self._chunks):
            if self._in_memory <= self.memory_budget * 0.75:
                break
            if chunk.spilled:
                continue
            base = self._spill_dir / f"chunk-{chunk.seq_start}"
            np.save(f"{base}.headers.npy", chunk.headers)
            np.save(f"{base}.ts.npy", chunk.ts_ns)
            with open(f"{base}.payloads", "wb") as out:
                out.write(chunk.payloads)
            self._in_memory -= chunk.nbytes
            chunk.headers = np.load(f"{base}.headers.npy", mmap_mode="r")
            chunk.ts_ns = np.load(f"{base}.ts.npy", mmap_mode="r")
            chunk.payloads = _map_file(f"{base}.payloads")
            chunk.frame = None
            chunk.spilled = True

    # ---------------------------------------------------------------- reading

    @property
    def initial_names(self) -> list[tuple[str, Pid, str]]:
        """(node, pid, name) registered when each trace started, in the current syntax."""
        return [(node, pid, format_name(name, self.syntax) or str(name))
                for node, pid, name in self._initial_names]

    @property
    def initial_procs(self) -> set[int]:
        """Pid ids known to be traced (and alive) when their trace started."""
        return set(self._initial_procs)

    @property
    def initial_relations(self) -> list[tuple[int, str, int]]:
        """(pid id, "link" or "monitor", peer id) as each trace started."""
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

    def term_of(self, gid: int) -> Any:
        return self._ids[gid]

    def id_text(self, gid: int) -> str | None:
        return _id_text(self._ids[gid], self.syntax)

    def frame(self) -> pd.DataFrame:
        """Every event as a DataFrame with the public columns plus ``_pid``/``_peer`` ids."""
        with self._lock:
            chunks = list(self._chunks)
            if self._frame_cache is not None and self._frame_chunks == len(chunks):
                return self._frame_cache
            id_texts = np.array([_id_text(t, self.syntax) for t in self._ids], dtype=object)
            frames = [self._chunk_frame(c, id_texts) for c in chunks]
        if frames:
            frame = pd.concat(frames, ignore_index=True)
        else:
            frame = _empty_frame()
        frame = self._add_names(frame)
        frame["kind"] = frame["kind"].astype("category")
        with self._lock:
            self._frame_cache = frame
            self._frame_chunks = len(chunks)
        return frame

    def _chunk_frame(self, chunk: _Chunk, id_texts: np.ndarray) -> pd.DataFrame:
        if chunk.frame is not None:
            return chunk.frame
        h = chunk.headers
        n = len(h)
        terms: list[Any] = [None] * n
        texts: list[str | None] = [None] * n
        # Plain Python lists: indexing numpy scalars in a loop costs more than the decode.
        kinds = h["kind"].tolist()
        offs, lens = h["pay_off"].tolist(), h["pay_len"].tolist()
        flags, aux = h["flags"].tolist(), h["aux"].tolist()
        blob = chunk.payloads
        memo = self._memo
        for i in range(n):
            length = lens[i]
            kind = kinds[i]
            if length:
                raw = bytes(blob[offs[i]:offs[i] + length])
                key = (kind, raw)
                hit = memo.get(key)
                if hit is None:
                    hit = self._decode_payload(kind, raw, flags[i])
                    if len(memo) < _MEMO_MAX:
                        memo[key] = hit
                terms[i], texts[i] = hit
            elif kind == _DROPPED:
                terms[i] = aux[i]
                texts[i] = f"{aux[i]} events dropped by the agent"
            elif kind == _MAILBOX:
                terms[i] = aux[i]
                texts[i] = f"{aux[i]} messages queued"
        mfa_text = id_texts[h["mfa"]]
        frame = pd.DataFrame({
            "seq": np.arange(chunk.seq_start, chunk.seq_start + n, dtype=np.int64),
            "node": chunk.node,
            "ts": pd.to_datetime(np.asarray(chunk.ts_ns), unit="ns", utc=True),
            "kind": _KIND_NAMES[kinds],
            "pid": id_texts[h["pid"]],
            "name": None,
            "peer": id_texts[h["peer"]],
            "mfa": mfa_text,
            # object, not str: pandas would turn a column of Atoms into plain text
            "term": pd.Series(terms, dtype=object),
            "text": texts,
            "_pid": h["pid"].astype(np.int64),
            "_peer": h["peer"].astype(np.int64),
            "_aux": h["aux"].astype(np.int64),
            # aux under the name of what it means for the row's kind (schema.AUX)
            "_duration_ns": np.where(np.isin(h["kind"], _DURATION), h["aux"], 0).astype(np.int64),
            "_count": np.where(np.isin(h["kind"], _COUNT), h["aux"], 0).astype(np.int64),
            "_truncated": (h["flags"] & FLAG_TRUNCATED).astype(bool),
        })
        if not chunk.spilled:
            chunk.frame = frame
        return frame

    def _decode_payload(self, kind: int, raw: bytes, flags: int) -> tuple[Any, str | None]:
        try:
            term = decode(raw)
        except DecodeError as exc:
            return None, f"<undecodable payload: {exc}>"
        if kind == _STATE:
            term = _state_term(term)
        if flags & FLAG_TRUNCATED:
            return term, (f"#Truncated<{term[1]} bytes>" if isinstance(term, tuple) else None)
        return term, self._text(kind, term)

    def _text(self, kind: int, term: Any) -> str:
        if kind == _STATE:
            return render(term["after"], self.syntax, self.text_limit)
        return render(term, self.syntax, self.text_limit)

    def _add_names(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The registered name each pid had at the moment of each event."""
        rows = [(-1, self._gid_of_pid(node, pid), name) for node, pid, name in self.initial_names]
        reg = frame[frame["kind"].isin(["register", "unregister"])]
        for seq, kind, pid_id, peer_id in zip(reg["seq"], reg["kind"], reg["_pid"], reg["_peer"]):
            name = self.id_text(int(peer_id)) if kind == "register" else None
            rows.append((int(seq), int(pid_id), name))
        if not rows or frame.empty:
            return frame
        names = pd.DataFrame(rows, columns=["seq", "_pid", "name"]).sort_values("seq")
        names = names[names["_pid"] > 0]
        left = frame.drop(columns=["name"]).sort_values("seq")
        merged = pd.merge_asof(left, names, on="seq", by="_pid", direction="backward")
        return merged[EVENT_COLUMNS + [c for c in merged.columns if c.startswith("_")]]

    def pid_ids(self, proc: Any) -> set[int]:
        """Every pid id ``proc`` stands for: a pid text, or a registered name or
        module alias (in either syntax) with every pid that held it, restarts included."""
        text = str(proc)
        if text.startswith("<"):
            # Every pid an event names (as actor or peer) is interned: no need
            # to build the event frame for this.
            ids = {gid for gid, term in enumerate(self._ids)
                   if isinstance(term, Pid) and str(term) == text}
        else:
            wanted = {text, format_name(Atom(erlang_module_name(text)), self.syntax) or text}
            frame = self.frame()
            ids = set(frame.loc[frame["name"].isin(wanted), "_pid"])
            ids |= {self._gid_of_pid(node, pid)
                    for node, pid, name in self.initial_names if name in wanted}
        ids.discard(-1)
        ids.discard(0)
        if not ids:
            raise QueryError(f"no recorded process matches {proc!r}; pass a pid like "
                             "'<0.123.0>', a registered name, or a module alias")
        return {int(i) for i in ids}

    def _gid_of_pid(self, node: str, pid: Pid) -> int:
        return self._id_index.get(_id_key(node, pid), -1)

    def payload_bytes(self, seq: int) -> bytes:
        """The raw payload of event ``seq`` (O(1): read through the flat header arrays)."""
        raw = self.raw()
        if not 0 <= seq < len(raw):
            raise QueryError(f"no event with seq {seq}; seqs run from 0 to {self._count - 1}")
        return raw.payload(seq)


def _normalise_aux(table: np.ndarray, native_per_second: int) -> None:
    """Durations in ``aux`` to nanoseconds (see ``schema.AUX``), in place."""
    kind, aux = table["kind"], table["aux"]
    callbacks = kind == _STATE
    if native_per_second != 1_000_000_000 and callbacks.any():
        aux[callbacks] = (aux[callbacks].astype(np.float64)
                          * (1e9 / native_per_second)).astype(np.int64)
    monitor = np.isin(kind, _MONITOR_MS)
    if monitor.any():
        aux[monitor] = aux[monitor] * 1_000_000


def _id_key(node: str, term: Any) -> tuple:
    """What makes two interned terms one id. Pids (the most common, by far) skip repr."""
    if type(term) is Pid:
        return (node, "Pid", term.node, term.id, term.serial, term.creation)
    return (node if isinstance(term, tuple) else "", type(term).__name__, repr(term))


def _id_text(term: Any, syntax: str) -> str | None:
    if term is None:
        return None
    if isinstance(term, Pid):
        return str(term)
    if isinstance(term, Atom):
        return format_name(term, syntax)
    if isinstance(term, tuple) and len(term) == 3 and isinstance(term[2], int):
        return format_mfa_term(term, syntax)
    if isinstance(term, tuple) and len(term) == 2:   # {Name, Node} remote send
        return f"{format_name(term[0], syntax)}@{term[1]}"
    return render(term, syntax, 80)


_CALLBACKS = {Atom("$gen_call"): "handle_call", Atom("$gen_cast"): "handle_cast"}


def _state_term(term: Any) -> dict:
    """{Msg, Before, After, Reply, Kind[, Extra]} from the sys hook, unwrapped for people.

    Extra (agents from version 10): ``n`` (the callback's number since the
    hook went in), ``tool`` (ns the hook itself took), ``changes`` (the
    fields that changed, as the hook found them by identity, or None).
    """
    extra: dict = {}
    if isinstance(term, tuple) and len(term) == 6 and isinstance(term[5], dict):
        extra = {str(k): v for k, v in term[5].items()}
        term = term[:5]
    try:
        message, before, after, reply, kind = term
    except (TypeError, ValueError):
        return {"callback": None, "message": term, "before": None, "after": None, "reply": None,
                "tool_ns": 0, "changes": None}
    callback = "handle_info"
    if kind == Atom("gen_statem"):
        # {EventType, Content}; before/after are the state names.
        callback = "handle_event"
        if isinstance(message, tuple) and len(message) == 2:
            message = message[1]
    elif isinstance(message, tuple) and message:
        tag = message[0]
        if tag == Atom("$gen_call") and len(message) == 3:
            callback, message = "handle_call", message[2]
        elif tag == Atom("$gen_cast") and len(message) == 2:
            callback, message = "handle_cast", message[1]
        elif tag == Atom("continue") and len(message) == 2:
            callback, message = "handle_continue", message[1]
    if isinstance(reply, tuple) and len(reply) == 2 and reply[0] == Atom("reply"):
        reply = reply[1]
    elif reply == Atom("noreply"):
        reply = None
    changes = extra.get("changes")
    return {"callback": callback, "message": message, "before": before, "after": after,
            "reply": reply, "tool_ns": int(extra.get("tool", 0) or 0),
            "changes": None if not isinstance(changes, tuple) else _changes(changes)}


def _changes(found: tuple) -> list[tuple[tuple, Any]]:
    """[(path, value)] from the hook's ([{Path, Value}], Complete); a path is a
    tuple of ("key", map key) and ("elem", 1-based position); value STATE_LARGE when too
    large to copy, ``Atom('$microscope_absent')`` for a key that went away."""
    items, _complete = found
    out = []
    for path, value in items if isinstance(items, list) else []:
        out.append((tuple((str(step[0]), step[1]) for step in path), value))
    return out


def _map_file(path: str) -> Any:
    size = os.path.getsize(path)
    if size == 0:
        return b""
    with open(path, "rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def _empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})
    frame["seq"] = frame["seq"].astype(np.int64)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    for c in ("_pid", "_peer", "_aux", "_duration_ns", "_count"):
        frame[c] = pd.Series(dtype=np.int64)
    frame["_truncated"] = pd.Series(dtype=bool)
    return frame
