"""Saved sessions: a self-describing directory of Parquet files plus metadata.

    recording/
      metadata.json     node, OTP/Elixir/app versions, git commit, trace specs,
                        counts, drops; never a cookie
      events/           one row per event: the raw header fields + payload bytes,
        node=app1@host/events.parquet     partitioned by node (Hive layout: DuckDB's
        node=app2@host/events.parquet     read_parquet('events/*/*.parquet',
                                          hive_partitioning=1), Spark and Polars read it)
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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..beam.etf import decode, encode
from .event_store import EventStore, StoreParts
from .schema import HEADER_DTYPE, normalise_aux

__all__ = ["save_store", "load_store", "FORMAT_VERSION"]

# 2: durations in ``aux`` are nanoseconds for every kind (schema.AUX); in 1
# the system monitor's were milliseconds. 3: events partitioned by node.
FORMAT_VERSION = 3


def save_store(store: EventStore, path: str | Path, metadata: dict[str, Any]) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    parts = store.to_parts()
    h = parts.headers
    n = len(h)
    pieces = [parts.payloads[o:o + l] for o, l in zip(h["pay_off"].tolist(), h["pay_len"].tolist())]
    events = pa.table({
        "seq": pa.array(np.arange(n, dtype=np.int64)),
        "node": pa.DictionaryArray.from_arrays(pa.array(parts.nodes.astype(np.int32)),
                                               pa.array(parts.node_names, pa.string())),
        "kind": pa.array(h["kind"]),
        "flags": pa.array(h["flags"]),
        "pid": pa.array(h["pid"].astype(np.int64)),
        "peer": pa.array(h["peer"].astype(np.int64)),
        "mfa": pa.array(h["mfa"].astype(np.int64)),
        "ts": pa.array(h["ts"].astype("datetime64[ns]"), pa.timestamp("ns", tz="UTC")),
        "aux": pa.array(h["aux"]),
        "payload": pa.array(pieces, pa.binary()),
    })
    # One partition per node; seq says where each event goes back.
    node_codes = parts.nodes.astype(np.int32)
    for code, node in enumerate(parts.node_names):
        folder = out / "events" / f"node={node}"
        folder.mkdir(parents=True, exist_ok=True)
        rows = pa.array(np.flatnonzero(node_codes == code))
        pq.write_table(events.drop_columns(["node"]).take(rows), folder / "events.parquet",
                       compression="zstd")
    ids = pa.table({
        "id": pa.array(np.arange(1, len(parts.ids) + 1, dtype=np.int64)),
        "node": pa.array([node for node, _ in parts.ids], pa.string()),
        "text": pa.array([store.id_text(i) for i in range(1, len(parts.ids) + 1)], pa.string()),
        "term": pa.array([encode(term) for _, term in parts.ids], pa.binary()),
    })
    pq.write_table(ids, out / "ids.parquet")
    pq.write_table(pa.table({
        "node": pa.array([n for n, _, _ in parts.initial_names], pa.string()),
        "pid": pa.array([encode(p) for _, p, _ in parts.initial_names], pa.binary()),
        "name": pa.array([encode(a) for _, _, a in parts.initial_names], pa.binary()),
    }), out / "names.parquet")
    # Processes traced from the start ride along as ("traced", peer 0) rows.
    relations = parts.initial_relations + [(gid, "traced", 0) for gid in sorted(parts.initial_procs)]
    pq.write_table(pa.table({
        "pid": pa.array([r[0] for r in relations], pa.int64()),
        "relation": pa.array([r[1] for r in relations], pa.string()),
        "peer": pa.array([r[2] for r in relations], pa.int64()),
    }), out / "relations.parquet")
    pq.write_table(pa.Table.from_pylist(parts.sources, schema=pa.schema([
        ("key", pa.string()), ("node", pa.string()), ("time_offset", pa.int64()),
        ("native_per_second", pa.int64()), ("seen", pa.int64()), ("dropped", pa.int64())])),
        out / "sources.parquet")
    meta = dict(metadata, format_version=FORMAT_VERSION, events=n, syntax=store.syntax)
    (out / "metadata.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return out


def load_store(path: str | Path) -> tuple[EventStore, dict[str, Any]]:
    src = Path(path)
    meta_path = src / "metadata.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{src} is not a saved microscope session (no metadata.json)")
    metadata = json.loads(meta_path.read_text())
    ids = pq.read_table(src / "ids.parquet")
    names = pq.read_table(src / "names.parquet")
    relations: list = []
    if (src / "relations.parquet").exists():  # absent from sessions saved before it existed
        table = pq.read_table(src / "relations.parquet")
        relations = list(zip(table["pid"].to_pylist(), table["relation"].to_pylist(),
                             table["peer"].to_pylist()))
    headers, payloads, nodes, node_names = _read_events(
        src / "events.parquet" if (src / "events.parquet").exists() else src / "events")
    if metadata.get("format_version", 1) < 2:
        normalise_aux(headers, 1_000_000_000)
    parts = StoreParts(
        headers=headers, payloads=payloads, nodes=nodes, node_names=node_names,
        ids=[(node, decode(term)) for node, term in zip(ids["node"].to_pylist(),
                                                        ids["term"].to_pylist())],
        initial_names=[(n, decode(p), decode(a)) for n, p, a in
                       zip(names["node"].to_pylist(), names["pid"].to_pylist(),
                           names["name"].to_pylist())],
        initial_relations=[r for r in relations if r[1] != "traced"],
        initial_procs={r[0] for r in relations if r[1] == "traced"},
        sources=pq.read_table(src / "sources.parquet").to_pylist(),
        syntax=metadata.get("syntax", "elixir"))
    try:
        store = EventStore.from_parts(parts)
    except ValueError as exc:
        raise ValueError(f"{src}: {exc}") from None
    return store, metadata


def _read_events(path: Path) -> tuple[np.ndarray, bytes, np.ndarray, list[str]]:
    """Headers, one payload blob, and per-event node indexes, without a loop per event.
    ``path``: the node partitions (format 3), or one file (formats 1 and 2)."""
    if not path.exists():         # a recording with no event has no partition either
        return np.zeros(0, dtype=HEADER_DTYPE), b"", np.zeros(0, dtype=np.int16), []
    events = pq.read_table(path, partitioning="hive" if path.is_dir() else None)
    n = events.num_rows
    headers = np.zeros(n, dtype=HEADER_DTYPE)
    if not n:
        return headers, b"", np.zeros(0, dtype=np.int16), []
    events = events.sort_by("seq").combine_chunks()
    if not pa.types.is_dictionary(events.schema.field("node").type):
        events = events.set_column(events.schema.get_field_index("node"), "node",
                                   pc.dictionary_encode(events.column("node").cast(pa.string())))
        events = events.combine_chunks()
    payload = events.column("payload").chunk(0)
    offsets = np.frombuffer(payload.buffers()[1], dtype=np.int32)[payload.offset:
                                                                    payload.offset + n + 1]
    blob = payload.buffers()[2]
    blob_bytes = memoryview(blob) if blob is not None else b""
    node_col = events.column("node").chunk(0)
    for name in ("kind", "flags", "pid", "peer", "mfa", "aux"):
        headers[name] = events.column(name).to_numpy()
    headers["pay_off"] = offsets[:-1] - offsets[0]
    headers["pay_len"] = np.diff(offsets)
    headers["ts"] = events.column("ts").to_numpy().astype("datetime64[ns]").astype(np.int64)
    base = int(offsets[0])
    data = bytes(blob_bytes[base:base + int(offsets[-1] - offsets[0])])
    return (headers, data, node_col.indices.to_numpy(zero_copy_only=False),
            node_col.dictionary.to_pylist())
