"""The shapes a store's events take: kept chunks, flat columns, and parts to persist."""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..beam.etf import decode
from ..beam.terms import Pid

__all__ = ["Chunk", "RawColumns", "StoreParts"]


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

    def term(self, i: int) -> Any:
        return decode(self.payload(i)) if self.pay_len[i] else None


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
    initial_names: list[tuple[str, Pid, Any]]
    initial_relations: list[tuple[int, str, int]]
    initial_procs: set[int]
    sources: list[dict]          # key, node, time_offset, native_per_second, seen, dropped
    syntax: str = "elixir"


def _map_file(path: str) -> Any:
    size = os.path.getsize(path)
    if size == 0:
        return b""
    with open(path, "rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
