"""Saved sessions: a self-describing directory of Parquet files plus metadata.

    recording/
      metadata.json     node, OTP/Elixir/app versions, git commit, trace specs,
                        counts, drops; never a cookie
      events.parquet    one row per event: the raw header fields + payload bytes
      ids.parquet       interned pids / names / MFAs, as external term format
      names.parquet     names registered when each trace started
      sources.parquet   one row per agent: node, clock offset, seen, dropped

Everything is columnar and loads without decoding a payload: DuckDB, Spark
or Polars can read the same files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..beam.etf import decode, encode
from .event_store import EventStore, _Chunk, _normalise_aux, _Source
from .schema import HEADER_DTYPE

__all__ = ["save_store", "load_store", "FORMAT_VERSION"]

# 2: durations in ``aux`` are nanoseconds for every kind (schema.AUX); in 1
# the system monitor's were milliseconds.
FORMAT_VERSION = 2


def save_store(store: EventStore, path: str | Path, metadata: dict[str, Any]) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    raw = store.raw()
    n = len(raw)
    # Payloads as one Arrow binary column built from offsets: no Python loop per event.
    pieces = [bytes(raw.blobs[c][int(o):int(o) + int(l)]) if l else b""
              for c, o, l in zip(raw.chunk, raw.pay_off, raw.pay_len)] if n else []
    events = pa.table({
        "seq": pa.array(np.arange(n, dtype=np.int64)),
        "node": pa.DictionaryArray.from_arrays(pa.array(raw.node.astype(np.int32)),
                                               pa.array(raw.node_names, pa.string())),
        "kind": pa.array(raw.kind),
        "flags": pa.array(raw.flags),
        "pid": pa.array(raw.pid),
        "peer": pa.array(raw.peer),
        "mfa": pa.array(raw.mfa),
        "ts": pa.array(raw.ts_ns.astype("datetime64[ns]"), pa.timestamp("ns", tz="UTC")),
        "aux": pa.array(raw.aux),
        "payload": pa.array(pieces, pa.binary()),
    })
    pq.write_table(events, out / "events.parquet", compression="zstd")
    node_of = {gid: key[0] or None for key, gid in store._id_index.items()}
    ids = pa.table({
        "id": pa.array(np.arange(1, len(store._ids), dtype=np.int64)),
        "node": pa.array([node_of.get(i) for i in range(1, len(store._ids))], pa.string()),
        "text": pa.array([store.id_text(i) for i in range(1, len(store._ids))], pa.string()),
        "term": pa.array([encode(t) for t in store._ids[1:]], pa.binary()),
    })
    pq.write_table(ids, out / "ids.parquet")
    names = pa.table({
        "node": pa.array([n for n, _, _ in store._initial_names], pa.string()),
        "pid": pa.array([encode(p) for _, p, _ in store._initial_names], pa.binary()),
        "name": pa.array([encode(a) for _, _, a in store._initial_names], pa.binary()),
    })
    pq.write_table(names, out / "names.parquet")
    # Processes traced from the start ride along as ("traced", peer 0) rows.
    relations = store._initial_relations + [(gid, "traced", 0) for gid in sorted(store._initial_procs)]
    pq.write_table(pa.table({
        "pid": pa.array([r[0] for r in relations], pa.int64()),
        "relation": pa.array([r[1] for r in relations], pa.string()),
        "peer": pa.array([r[2] for r in relations], pa.int64()),
    }), out / "relations.parquet")
    sources = pa.table({
        "key": pa.array(list(store._sources), pa.string()),
        "node": pa.array([s.node for s in store._sources.values()], pa.string()),
        "time_offset": pa.array([s.time_offset for s in store._sources.values()], pa.int64()),
        "native_per_second": pa.array([s.native_per_second for s in store._sources.values()],
                                      pa.int64()),
        "seen": pa.array([s.seen for s in store._sources.values()], pa.int64()),
        "dropped": pa.array([s.dropped for s in store._sources.values()], pa.int64()),
    })
    pq.write_table(sources, out / "sources.parquet")
    meta = dict(metadata, format_version=FORMAT_VERSION, events=n, syntax=store.syntax)
    (out / "metadata.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return out


def load_store(path: str | Path) -> tuple[EventStore, dict[str, Any]]:
    src = Path(path)
    meta_path = src / "metadata.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{src} is not a saved microscope session (no metadata.json)")
    metadata = json.loads(meta_path.read_text())
    store = EventStore(syntax=metadata.get("syntax", "elixir"))
    ids = pq.read_table(src / "ids.parquet")
    for gid, node, term_bytes in zip(ids["id"].to_pylist(), ids["node"].to_pylist(),
                                     ids["term"].to_pylist()):
        if store._global_id(node or "", decode(term_bytes)) != gid:
            raise ValueError(f"{src / 'ids.parquet'} is inconsistent at id {gid}")
    names = pq.read_table(src / "names.parquet")
    store._initial_names = [(n, decode(p), decode(a)) for n, p, a in
                            zip(names["node"].to_pylist(), names["pid"].to_pylist(),
                                names["name"].to_pylist())]
    if (src / "relations.parquet").exists():  # absent from sessions saved before it existed
        relations = pq.read_table(src / "relations.parquet")
        rows = list(zip(relations["pid"].to_pylist(), relations["relation"].to_pylist(),
                        relations["peer"].to_pylist()))
        store._initial_relations = [r for r in rows if r[1] != "traced"]
        store._initial_procs = {r[0] for r in rows if r[1] == "traced"}
    sources = pq.read_table(src / "sources.parquet").to_pylist()
    for s in sources:
        store._sources[s["key"]] = _Source(s["node"], s["time_offset"], s["native_per_second"],
                                           seen=s["seen"], dropped=s["dropped"])
    events = pq.read_table(src / "events.parquet")
    n = events.num_rows
    if n:
        events = events.combine_chunks()
        payload = events.column("payload").chunk(0)
        offsets = np.frombuffer(payload.buffers()[1], dtype=np.int32)[payload.offset:
                                                                        payload.offset + n + 1]
        blob = payload.buffers()[2]
        blob_bytes = memoryview(blob) if blob is not None else b""
        node_col = events.column("node").chunk(0)
        node_names = node_col.dictionary.to_pylist()
        node_idx = node_col.indices.to_numpy(zero_copy_only=False)
        ts_ns = events.column("ts").to_numpy().astype("datetime64[ns]").astype(np.int64)
        headers = np.zeros(n, dtype=HEADER_DTYPE)
        for name in ("kind", "flags", "pid", "peer", "mfa", "aux"):
            headers[name] = events.column(name).to_numpy()
        headers["pay_off"] = offsets[:-1] - offsets[0]
        headers["pay_len"] = np.diff(offsets)
        headers["ts"] = ts_ns
        if metadata.get("format_version", 1) < 2:
            _normalise_aux(headers, 1_000_000_000)
        base = int(offsets[0])
        data = bytes(blob_bytes[base:base + int(offsets[-1] - offsets[0])])
        # A chunk has one node: split where the node changes (once, for one node).
        cuts = np.flatnonzero(np.diff(node_idx)) + 1
        for start, stop in zip(np.r_[0, cuts], np.r_[cuts, n]):
            node = node_names[int(node_idx[start])]
            store._chunks.append(_Chunk(node, node, int(start), headers[start:stop],
                                        data, ts_ns[start:stop]))
        store._count = n
    return store, metadata
