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

A recording is never lost or mixed: ``save_store`` writes a hidden sibling
(``.NAME.saving-PID-…``) and renames it into place, so a writer killed
midway leaves the old recording as it was; saving where a recording is
refuses unless ``overwrite=True``, which replaces it whole. ``load_store``
checks the format version, the metadata and every file, and says in one
line which is wrong; a recording with a file missing or damaged loads only
with ``partial=True``, which says what is missing.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..beam.etf import decode, encode
from ..errors import MicroscopeError, RecordingError
from .event_store import EventStore, StoreParts
from .schema import HEADER_DTYPE, normalise_aux

__all__ = ["save_store", "load_store", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

# 2: durations in ``aux`` are nanoseconds for every kind (schema.AUX); in 1
# the system monitor's were milliseconds. 3: events partitioned by node.
FORMAT_VERSION = 3
# What each file must hold (columns), and from which format version on.
TABLES = {"ids.parquet": (1, {"id", "node", "term"}),
          "names.parquet": (1, {"node", "pid", "name"}),
          "relations.parquet": (3, {"pid", "relation", "peer"}),
          "sources.parquet": (1, {"key", "node", "time_offset", "native_per_second", "seen",
                                  "dropped"})}
EVENT_COLUMNS = {"seq", "kind", "flags", "pid", "peer", "mfa", "ts", "aux", "payload"}
# metadata.json keys the loader reads, and the types they must have.
METADATA_TYPES = {"format_version": int, "events": int, "syntax": str, "node": (str, type(None)),
                  "audit": list, "annotations": list, "modules": list, "tree": list}


def save_store(store: EventStore, path: str | Path, metadata: dict[str, Any],
               overwrite: bool = False) -> Path:
    """Write the recording to ``path`` whole, or not at all (see the module doc)."""
    out = Path(path)
    _check_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    _sweep_abandoned(out)
    staging = out.parent / f".{out.name}.saving-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        staging.mkdir()
        _write(store, staging, metadata)
        _move_into_place(staging, out)
    except OSError as exc:
        raise RecordingError(f"could not save the recording to {out} ({exc.strerror or exc}); "
                             "nothing there was changed") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def _check_target(out: Path, overwrite: bool) -> None:
    if out.is_dir() and any(out.iterdir()):
        if not (out / "metadata.json").exists():
            raise RecordingError(f"{out} holds files that are not a microscope recording; save "
                                 "to a new path (overwrite=True only replaces a recording)")
        if not overwrite:
            raise RecordingError(f"{out} already holds a recording; pass overwrite=True to "
                                 "replace it whole, or save to a new path")
    elif out.exists() and not out.is_dir():
        raise RecordingError(f"{out} is a file, not a recording; save to a new path")


def _sweep_abandoned(out: Path) -> None:
    """Half-written siblings whose writer died (killed mid-save) are removed."""
    for leftover in out.parent.glob(f".{out.name}.saving-*"):
        pid = leftover.name.rsplit(".saving-", 1)[1].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _move_into_place(staging: Path, out: Path) -> None:
    """Rename the finished recording onto ``out``; an old one is moved aside
    first and removed after, so ``out`` holds the old or the new, never a mix."""
    if not (out / "metadata.json").exists():
        if out.is_dir():
            out.rmdir()             # empty: checked by _check_target
        os.rename(staging, out)
        return
    aside = out.parent / f".{out.name}.replaced-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(out, aside)
    try:
        os.rename(staging, out)
    except OSError:
        os.rename(aside, out)       # the old one back where it was
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _write(store: EventStore, out: Path, metadata: dict[str, Any]) -> None:
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
    (out / "events").mkdir()
    node_codes = parts.nodes.astype(np.int32)
    for code, node in enumerate(parts.node_names):
        folder = out / "events" / f"node={node}"
        folder.mkdir(parents=True, exist_ok=True)
        rows = pa.array(np.flatnonzero(node_codes == code))
        pq.write_table(events.drop_columns(["node"]).take(rows), folder / "events.parquet",
                       compression="zstd", write_page_checksum=True)
    ids = pa.table({
        "id": pa.array(np.arange(1, len(parts.ids) + 1, dtype=np.int64)),
        "node": pa.array([node for node, _ in parts.ids], pa.string()),
        "text": pa.array([store.id_text(i) for i in range(1, len(parts.ids) + 1)], pa.string()),
        "term": pa.array([encode(term) for _, term in parts.ids], pa.binary()),
    })
    pq.write_table(ids, out / "ids.parquet", write_page_checksum=True)
    pq.write_table(pa.table({
        "node": pa.array([n[0] for n in parts.initial_names], pa.string()),
        "pid": pa.array([encode(n[1]) for n in parts.initial_names], pa.binary()),
        "name": pa.array([encode(n[2]) for n in parts.initial_names], pa.binary()),
        "since": pa.array([n[3] if len(n) > 3 else -1 for n in parts.initial_names], pa.int64()),
    }), out / "names.parquet", write_page_checksum=True)
    # Processes traced from the start ride along as ("traced", peer 0) rows.
    relations = parts.initial_relations + [(gid, "traced", 0) for gid in sorted(parts.initial_procs)]
    pq.write_table(pa.table({
        "pid": pa.array([r[0] for r in relations], pa.int64()),
        "relation": pa.array([r[1] for r in relations], pa.string()),
        "peer": pa.array([r[2] for r in relations], pa.int64()),
    }), out / "relations.parquet", write_page_checksum=True)
    pq.write_table(pa.Table.from_pylist(parts.sources, schema=pa.schema([
        ("key", pa.string()), ("node", pa.string()), ("time_offset", pa.int64()),
        ("native_per_second", pa.int64()), ("seen", pa.int64()), ("dropped", pa.int64())])),
        out / "sources.parquet", write_page_checksum=True)
    meta = dict(metadata, format_version=FORMAT_VERSION, events=n, syntax=store.syntax)
    (out / "metadata.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")


def load_store(path: str | Path, partial: bool = False
               ) -> tuple[EventStore, dict[str, Any], list[str]]:
    """The store and metadata saved at ``path``, and what is missing from it (empty
    unless ``partial``). RecordingError, in one line, when it cannot be read."""
    src = Path(path)
    metadata = _read_metadata(src)
    version = metadata.get("format_version", 1)
    problems: list[str] = []
    tables = {}
    for name, (since, columns) in TABLES.items():
        table = _read_table(src / name, columns, problems, required=version >= since)
        tables[name] = table
    ids = _decode_rows(tables["ids.parquet"], "ids.parquet", problems,
                       lambda t: [(node, decode(term)) for node, term in
                                  zip(t["node"].to_pylist(), t["term"].to_pylist())])
    names = _decode_rows(tables["names.parquet"], "names.parquet", problems,
                         lambda t: [(n, decode(p), decode(a), since) for n, p, a, since in
                                    zip(t["node"].to_pylist(), t["pid"].to_pylist(),
                                        t["name"].to_pylist(),
                                        t["since"].to_pylist() if "since" in t.column_names
                                        else [-1] * t.num_rows)])
    relations = _decode_rows(tables["relations.parquet"], "relations.parquet", problems,
                             lambda t: list(zip(t["pid"].to_pylist(), t["relation"].to_pylist(),
                                                t["peer"].to_pylist())))
    sources = _decode_rows(tables["sources.parquet"], "sources.parquet", problems,
                           lambda t: t.to_pylist())
    events = _read_event_tables(src, version, metadata.get("events"), problems)
    if ids is None and events is not None and events.num_rows:
        problems.append("the events (they need ids.parquet)")
        events = None
    if problems and not partial:
        raise RecordingError(f"{src} is partial: {'; '.join(problems)}. Load what is there "
                             "with mic.load(path, partial=True), or restore the recording")
    ids = ids or []
    known = len(ids)
    if relations and any(max(r[0], r[2]) > known for r in relations):
        _damaged(src, "relations.parquet", "it names ids that ids.parquet lacks", partial, problems)
        relations = []
    headers, payloads, nodes, node_names = _events_columns(events)
    if len(headers) and max(int(headers[c].max()) for c in ("pid", "peer", "mfa")) > known:
        raise RecordingError(f"{src}: its events name ids that ids.parquet lacks: the files come "
                             "from different recordings; restore the recording from a copy")
    if version < 2:
        normalise_aux(headers, 1_000_000_000)
    parts = StoreParts(
        headers=headers, payloads=payloads, nodes=nodes, node_names=node_names,
        ids=ids, initial_names=names or [],
        initial_relations=[r for r in relations or [] if r[1] != "traced"],
        initial_procs={r[0] for r in relations or [] if r[1] == "traced"},
        sources=sources or [],
        syntax=metadata.get("syntax", "elixir"))
    try:
        store = EventStore.from_parts(parts)
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordingError(f"{src}: {exc}; restore the recording from a copy") from None
    return store, metadata, problems


def _read_metadata(src: Path) -> dict[str, Any]:
    if not src.exists():
        aside = sorted(src.parent.glob(f".{src.name}.replaced-*")) if src.parent.is_dir() else []
        if aside:
            raise RecordingError(f"{src} does not exist: a save replacing it was stopped midway; "
                                 f"the previous recording is in {aside[0]} (rename it back)")
        raise RecordingError(f"{src} does not exist; give the folder s.save(path) wrote")
    meta_path = src / "metadata.json"
    if not meta_path.is_file():
        raise RecordingError(f"{src} is not a saved microscope session (no metadata.json)")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"cannot read {meta_path} ({exc}); restore it from a copy") from None
    except json.JSONDecodeError as exc:
        raise RecordingError(f"{meta_path} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                             "restore it from a copy") from None
    if not isinstance(metadata, dict):
        raise RecordingError(f"{meta_path} holds a JSON {type(metadata).__name__}, not a "
                             "recording's metadata (an object); restore it from a copy")
    for key, kind in METADATA_TYPES.items():
        value = metadata.get(key)
        if key in metadata and (not isinstance(value, kind) or isinstance(value, bool)):
            raise RecordingError(f"{meta_path}: {key!r} is {value!r}, which is not what a "
                                 "recording holds there; restore it from a copy")
    version = metadata.get("format_version", 1)
    if not 1 <= version <= FORMAT_VERSION:
        raise RecordingError(f"{src} was saved in format {version}; this microscope reads "
                             f"formats 1 to {FORMAT_VERSION}: upgrade microscope-jupyter")
    if metadata.get("events", 0) < 0 or metadata.get("syntax", "elixir") not in ("elixir",
                                                                                  "erlang"):
        raise RecordingError(f"{meta_path}: its events count or syntax is out of range; "
                             "restore it from a copy")
    return metadata


def _read_table(path: Path, columns: set[str], problems: list[str], required: bool = True):
    """The table at ``path``, or None (and a line in ``problems``)."""
    if not path.exists():
        if required:
            problems.append(f"{path.name} is missing")
        return None
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (OSError, ValueError, pa.ArrowException) as exc:
        problems.append(f"{_shown(path)} is damaged ({_first_line(exc)})")
        return None
    lacking = columns - set(table.column_names)
    if lacking:
        problems.append(f"{_shown(path)} is damaged (no {', '.join(sorted(lacking))} column)")
        return None
    return table


def _decode_rows(table, name: str, problems: list[str], rows):
    if table is None:
        return None
    try:
        return rows(table)
    except (MicroscopeError, ValueError, TypeError, IndexError, pa.ArrowException) as exc:
        problems.append(f"{name} is damaged ({_first_line(exc)})")
        return None


def _damaged(src: Path, name: str, why: str, partial: bool, problems: list[str]) -> None:
    if not partial:
        raise RecordingError(f"{src}/{name} is damaged: {why}; restore the recording from a copy")
    problems.append(f"{name} is damaged ({why})")


def _read_event_tables(src: Path, version: int, expected: int | None, problems: list[str]):
    """Every event as one table with a string ``node`` column, sorted by seq; None
    when none could be read."""
    known_problems = len(problems)
    if version < 3:       # one file, the node a column
        single = src / "events.parquet"
        if not single.exists() and not expected:
            return None
        events = _read_table(single, EVENT_COLUMNS | {"node"}, problems)
    else:
        events = _read_partitions(src / "events", expected, problems)
    if events is None:
        return None
    seqs = events.column("seq").to_numpy()
    n = len(seqs)
    if n and seqs.min() < 0:
        raise RecordingError(f"{src}: its events hold negative seqs; restore it from a copy")
    twice = bool(n) and int(np.bincount(seqs).max()) > 1
    if twice or (expected is not None and n > expected):
        said = f" where its metadata says {expected:,}" if expected is not None else ""
        raise RecordingError(f"{src} mixes two recordings: {n:,} events{said}"
                             f"{', some seqs twice' if twice else ''}; its files come from two "
                             "saves, so save it again from its session (overwrite=True)")
    if expected is not None and n < expected and len(problems) == known_problems:
        problems.append(f"{expected - n:,} of its {expected:,} events are missing")
    return events


def _read_partitions(folder: Path, expected: int | None, problems: list[str]):
    """Each node's events/node=NAME/events.parquet, as one table with a node column."""
    files = sorted(folder.glob("node=*/*.parquet")) if folder.is_dir() else []
    if not files:
        if expected:
            problems.append("the events folder is missing" if not folder.is_dir()
                            else "the events folder holds no events")
        return None
    pieces = []
    nodes = pa.array([file.parent.name.partition("=")[2] for file in files], pa.string())
    for code, file in enumerate(files):
        table = _read_table(file, EVENT_COLUMNS, problems)
        if table is not None:     # the node as a dictionary column, one dictionary for all
            node = pa.DictionaryArray.from_arrays(
                pa.array(np.full(table.num_rows, code, dtype=np.int32)), nodes)
            pieces.append(table.select([c for c in table.column_names if c in EVENT_COLUMNS])
                          .append_column("node", node))
    if not pieces:
        return None
    try:
        return pa.concat_tables(pieces, promote_options="permissive")
    except pa.ArrowException as exc:
        problems.append(f"the event files do not agree ({_first_line(exc)})")
        return None


def _shown(path: Path) -> str:
    """A file's name, with its node partition when it is one."""
    return f"{path.parent.parent.name}/{path.parent.name}/{path.name}" \
        if path.parent.name.startswith("node=") else path.name


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _events_columns(events) -> tuple[np.ndarray, bytes, np.ndarray, list[str]]:
    """Headers, one payload blob, and per-event node indexes, without a loop per event."""
    if events is None or not events.num_rows:
        return np.zeros(0, dtype=HEADER_DTYPE), b"", np.zeros(0, dtype=np.int16), []
    n = events.num_rows
    headers = np.zeros(n, dtype=HEADER_DTYPE)
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
