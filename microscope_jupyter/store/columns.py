"""The shapes a store's events take: kept chunks, flat columns, and parts to persist."""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..beam.etf import decode
from ..beam.terms import Pid
from .schema import HEADER_DTYPE, normalise_aux

__all__ = ["Chunk", "RawColumns", "Source", "StoreParts", "bytes_key", "starts_with"]


@dataclass
class Source:
    """One agent writing into a store (one trace on one node): its clock, its
    id map, what it saw and dropped, and where in the store it began."""

    node: str
    time_offset: int
    native_per_second: int
    id_map: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    seen: int = 0
    dropped: int = 0
    first_seq: int = 0      # the store's length when this trace began


@dataclass
class Chunk:
    """One agent batch as it is kept: sorted headers and the payload blob."""

    source: str
    node: str
    seq_start: int
    headers: np.ndarray      # HEADER_DTYPE, sorted by ts; pid/peer/mfa are global ids
    payloads: Any            # bytes, or an mmap once spilled
    ts_ns: np.ndarray        # wall clock, ns since the epoch
    spilled: bool = False

    @classmethod
    def from_batch(cls, source: str, node: str, seq_start: int, headers: bytes, payloads: Any,
                   id_map: np.ndarray, time_offset: int, native_per_second: int) -> "Chunk":
        """A batch as the agent sent it: local ids mapped to global ones, aux to ns,
        events in clock order, wall-clock times."""
        raw = np.frombuffer(headers, dtype=HEADER_DTYPE)
        # Batches arrive in tracer-mailbox order; within a batch, put events in
        # clock order so seq follows time (most batches already are).
        ts = raw["ts"]
        if (ts[1:] >= ts[:-1]).all():
            # A writable copy: through bytearray it is one memcpy (a packed
            # record array's own copy goes field by field, 50x slower).
            table = np.frombuffer(bytearray(headers), dtype=HEADER_DTYPE)
        else:
            table = raw[np.argsort(ts, kind="stable")]
        for column in ("pid", "peer", "mfa"):
            table[column] = id_map[table[column]]
        normalise_aux(table, native_per_second)
        return cls(source, node, seq_start, table, payloads,
                   _wall_ns(table["ts"], time_offset, native_per_second))

    @property
    def nbytes(self) -> int:
        return 0 if self.spilled else self.headers.nbytes + len(self.payloads) + self.ts_ns.nbytes

    def spill(self, base: Path) -> None:
        """Move this chunk's arrays and payloads to files at ``base`` and map them back."""
        np.save(f"{base}.headers.npy", self.headers)
        np.save(f"{base}.ts.npy", self.ts_ns)
        with open(f"{base}.payloads", "wb") as out:
            out.write(self.payloads)
        self.headers = np.load(f"{base}.headers.npy", mmap_mode="r")
        self.ts_ns = np.load(f"{base}.ts.npy", mmap_mode="r")
        self.payloads = _map_file(f"{base}.payloads")
        self.spilled = True


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

    def payloads(self, rows: np.ndarray) -> list[bytes]:
        """The raw payloads of many events at once (one pass, no per-row numpy)."""
        blobs = self.blobs
        return [bytes(blobs[c][o:o + n]) for c, o, n in zip(
            self.chunk[rows].tolist(), self.pay_off[rows].tolist(), self.pay_len[rows].tolist())]

    def payload_keys(self, rows: np.ndarray) -> np.ndarray:
        """An int64 key per event's payload: equal payloads, equal keys.

        Payloads up to 40 bytes (most messages) are hashed in numpy, 64 bits
        at a time; longer ones by Python's hash of their bytes (bytes_key)."""
        rows = np.asarray(rows, dtype=np.int64)
        keys = np.zeros(len(rows), dtype=np.int64)
        lens = self.pay_len[rows]
        short = lens <= _WIDE
        keys[short] = self.prefix_keys(rows[short], 0, lens[short])
        long_rows = rows[~short]
        if len(long_rows):
            keys[~short] = [hash(p) for p in self.payloads(long_rows)]
        return keys

    def heads(self, rows: np.ndarray) -> np.ndarray:
        """The first 40 bytes of each row's payload, zero-padded: (rows, 40) uint8."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros((len(rows), _WIDE), dtype=np.uint8)
        for group, buf in self._by_chunk(rows, np.arange(len(rows))):
            head = _padded(buf, self.pay_off[rows[group]],
                           np.minimum(self.pay_len[rows[group]], _WIDE))
            out[group, :head.shape[1]] = head
        return out

    def _by_chunk(self, rows: np.ndarray, at: np.ndarray):
        """(positions, chunk blob as uint8) for the positions ``at`` of ``rows``, per chunk."""
        at = at[np.argsort(self.chunk[rows[at]], kind="stable")]
        chunks = self.chunk[rows[at]]
        if not len(at):
            return
        starts = np.flatnonzero(np.r_[True, chunks[1:] != chunks[:-1]])
        for group in np.split(at, starts[1:]):
            yield group, np.frombuffer(self.blobs[int(self.chunk[rows[group[0]]])], dtype=np.uint8)

    def prefix_keys(self, rows: np.ndarray, skip: int, lengths: np.ndarray) -> np.ndarray:
        """bytes_key of ``b"\\x83" + payload[1 + skip:skip + length]`` per row, for
        lengths up to 40: the key a term nested at ``skip`` would have as a
        payload of its own (a state event's message is its tuple's first
        element), so one is found among receives without decoding it.
        Rows whose payload is too short get 0."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = np.broadcast_to(np.asarray(lengths, dtype=np.int64), rows.shape)
        keys = np.zeros(len(rows), dtype=np.int64)
        long_enough = np.flatnonzero(self.pay_len[rows] >= skip + lengths)
        for group, buf in self._by_chunk(rows, long_enough):
            window = _padded(buf, self.pay_off[rows[group]] + skip, lengths[group])
            window[:, 0] = 0x83
            keys[group] = _hash_padded(window, lengths[group])
        return keys

    def term(self, i: int) -> Any:
        return decode(self.payload(i)) if self.pay_len[i] else None


_WIDE = 40   # bytes hashed in numpy (5 words)
_SPAN = np.arange(_WIDE)


def _padded(buf: np.ndarray, offs: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Each payload's bytes in a row, zero-padded to the longest (a multiple
    of 8 bytes, at most _WIDE)."""
    width = min(_WIDE, -(-int(lens.max()) // 8) * 8) if len(lens) else 8
    width = max(width, 8)
    if len(buf) == 0:
        return np.zeros((len(offs), width), dtype=np.uint8)
    span = _SPAN[:width]
    inside = span[None, :] < lens[:, None]
    index = np.where(inside, offs[:, None] + span[None, :], 0)
    return np.where(inside, buf[np.minimum(index, len(buf) - 1)], 0).astype(np.uint8)


def starts_with(heads: np.ndarray, patterns, at: int = 0) -> np.ndarray:
    """Rows of ``heads`` (``RawColumns.heads``) whose bytes from ``at`` begin
    with any of ``patterns``."""
    found = np.zeros(len(heads), dtype=bool)
    for pattern in patterns:
        wanted = np.frombuffer(pattern, dtype=np.uint8)
        found |= np.all(heads[:, at:at + len(wanted)] == wanted, axis=1)
    return found


def bytes_key(payload: bytes) -> int:
    """payload_keys' key of one payload given as bytes."""
    if len(payload) > _WIDE:
        return hash(payload)
    buf = np.frombuffer(payload, dtype=np.uint8)
    lens = np.array([len(payload)])
    return int(_hash_padded(_padded(buf, np.array([0]), lens), lens)[0])


def _hash_padded(rows: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's first ``len`` bytes: a word past a row's
    length leaves its hash alone, so the padding's width does not matter."""
    words = np.ascontiguousarray(rows).view("<u8")
    lens = lens.astype(np.int64)
    h = lens.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for j in range(words.shape[1]):
        mixed = (h ^ words[:, j]) * np.uint64(0xBF58476D1CE4E5B9)
        mixed ^= mixed >> np.uint64(31)
        h = np.where(lens > 8 * j, mixed, h)
    return h.view(np.int64)


RELATIONS = ("link", "monitor", "monitored_by")   # RelationTable.relation codes


@dataclass
class RelationTable:
    """Links and monitors as a trace began, as columns: ``pids`` the distinct
    pids, and per relation the holder's and the peer's index into them and
    the relation's code in RELATIONS. ``monitored_by`` means the peer holds a
    monitor on the holder."""

    pids: list[Pid]
    holder: np.ndarray
    relation: np.ndarray
    peer: np.ndarray

    @classmethod
    def from_rows(cls, rows: Any) -> "RelationTable":
        """From (pid, relation, peer) rows, the relation an atom or str."""
        index: dict[Pid, int] = {}
        holder, relation, peer = [], [], []
        for a, r, b in rows:
            holder.append(index.setdefault(a, len(index)))
            relation.append(RELATIONS.index(str(r)))
            peer.append(index.setdefault(b, len(index)))
        return cls(list(index), np.array(holder, dtype=np.int64),
                   np.array(relation, dtype=np.int64), np.array(peer, dtype=np.int64))


@dataclass
class StoreParts:
    """Everything a store holds, as plain columns and lists: what persistence
    writes and reads back (``EventStore.to_parts`` / ``from_parts``)."""

    headers: np.ndarray          # HEADER_DTYPE: pid/peer/mfa global ids, ts wall-clock ns,
                                 # pay_off into ``payloads``; aux as in schema.AUX
    payloads: bytes
    nodes: np.ndarray            # per event, an index into node_names
    node_names: list[str]
    ids: list[tuple[str | None, Any]]      # ids 1..n: (node for pids and {Name, Node}, term)
    initial_names: list[tuple]     # (node, pid, name atom, since seq)
    initial_relations: list[tuple[int, str, int]]
    initial_procs: set[int]
    sources: list[dict]          # key, node, time_offset, native_per_second, seen, dropped
    syntax: str = "elixir"


def _wall_ns(mono: np.ndarray, time_offset: int, per_second: int) -> np.ndarray:
    native = mono.astype(np.int64) + time_offset
    if per_second == 1_000_000_000:
        return native
    if 1_000_000_000 % per_second == 0:
        return native * (1_000_000_000 // per_second)
    return (native.astype(np.float64) * (1e9 / per_second)).astype(np.int64)


def _map_file(path: str) -> Any:
    size = os.path.getsize(path)
    if size == 0:
        return b""
    with open(path, "rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
