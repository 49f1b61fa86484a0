"""Saved sessions: the directory layout, a faithful round trip, no secrets, SQL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import microscope_jupyter as mic
from fake_agent import A, B, FakeAgent
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.beam.terms import Atom
from microscope_jupyter.store.event_store import EventStore

NAME = Atom("Elixir.Demo.WorkerB")


@pytest.fixture
def recorded():
    store = EventStore()
    agent = FakeAgent(store, names=[(B, NAME)], relations=[(B, Atom("link"), A)])
    for i in range(3):
        agent.event("send", A, B, payload=(Atom("up"), i))
        agent.event("receive", B, payload=(Atom("up"), i))
        agent.event("state", B, payload=((Atom("up"), i), {Atom("n"): i}, {Atom("n"): i + 1},
                                         Atom("noreply"), Atom("gen_server")), aux=1000)
    agent.event("dropped", aux=7)
    agent.flush(seen=17, dropped=7)
    return OfflineSession(store, {"node": "demo@host", "otp_release": "25"}, None)


def test_round_trip_keeps_every_table(recorded, tmp_path):
    path = recorded.save(tmp_path / "rec")
    assert sorted(p.name for p in path.iterdir()) == [
        "events", "ids.parquet", "metadata.json", "names.parquet", "relations.parquet",
        "sources.parquet"]
    assert [p.name for p in (path / "events").iterdir()] == ["node=demo@host"]   # by node
    loaded = mic.load(path)
    for table in ("events",):
        a, b = getattr(recorded, table), getattr(loaded, table)
        assert a.drop(columns=["term"]).equals(b.drop(columns=["term"]))
        assert list(a["term"]) == list(b["term"])
    assert recorded.messages().drop(columns=["term"]).equals(loaded.messages().drop(columns=["term"]))
    assert list(recorded.states("Demo.WorkerB")["after"]) == list(loaded.states("Demo.WorkerB")["after"])
    assert loaded.store.dropped == 7 and loaded.store.seen == 17
    snap = loaded.time_travel().snapshot_at(5)
    assert snap.loc[snap["name"] == "Demo.WorkerB", "state"].iloc[0] == {Atom("n"): 2}
    assert snap.loc[snap["name"] == "Demo.WorkerB", "links"].iloc[0] == [str(A)]  # held at start


def test_metadata_is_self_describing(recorded, tmp_path):
    path = recorded.save(tmp_path / "rec")
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["node"] == "demo@host" and meta["otp_release"] == "25"
    assert meta["events"] == 10 and meta["dropped"] == 7 and meta["format_version"] == 3
    assert "saved_at" in meta and "microscope_version" in meta
    # The events read as plain columns in any Parquet reader, the node from the partition.
    table = pq.read_table(path / "events", partitioning="hive")
    assert table.column_names[:3] == ["seq", "kind", "flags"] and "node" in table.column_names
    assert set(table.column("node").to_pylist()) == {"demo@host"}


def test_load_of_something_else_is_one_clear_error(tmp_path):
    with pytest.raises(mic.errors.MicroscopeError, match="not a saved microscope session"):
        mic.load(tmp_path)


def test_sql_over_events_messages_and_states(recorded):
    kinds = recorded.sql("select kind, count(*) as n from events group by kind order by kind")
    assert dict(zip(kinds["kind"], kinds["n"])) == {"dropped": 1, "receive": 3, "send": 3, "state": 3}
    delivered = recorded.sql("select count(*) as n from messages where status = 'delivered'")
    assert delivered["n"].iloc[0] == 3
    states = recorded.sql("select \"after\" from states order by seq")
    assert states["after"].tolist() == ["%{n: 1}", "%{n: 2}", "%{n: 3}"]
    with pytest.raises(mic.errors.MicroscopeError, match="SQL failed"):
        recorded.sql("select nope from nowhere")


def test_a_session_saved_before_relations_existed_still_loads(recorded, tmp_path):
    path = recorded.save(tmp_path / "old")
    (path / "relations.parquet").unlink()       # as written by the formats before 3
    meta = json.loads((path / "metadata.json").read_text())
    (path / "metadata.json").write_text(json.dumps({**meta, "format_version": 2}))
    nodes = list((path / "events").iterdir())   # format 2: one file, the node a column
    table = pq.read_table(path / "events", partitioning="hive")
    pq.write_table(table.cast(table.schema.set(table.schema.get_field_index("node"),
                                               pa.field("node", pa.string()))),
                   path / "events.parquet")
    shutil.rmtree(path / "events")
    assert len(nodes) == 1
    loaded = mic.load(path)
    snap = loaded.time_travel().snapshot_at(5)
    worker_b = snap[snap["name"] == "Demo.WorkerB"].iloc[0]
    assert worker_b["links"] == [] and worker_b["state"] == {Atom("n"): 2}



# -- never lost, never mixed -------------------------------------------------------------


def _other_node_recording(events=2, node="other@host"):
    from microscope_jupyter.beam.terms import Pid

    store = EventStore()
    agent = FakeAgent(store, node=node)
    a, b = (Pid(Atom(node), n, 0, 1) for n in (1, 2))
    for i in range(events):
        agent.event("send", a, b, payload=i)
    agent.flush()
    return OfflineSession(store, {"node": node}, None)


def test_saving_where_a_recording_is_refuses_unless_overwrite_replaces_it_whole(recorded,
                                                                                tmp_path):
    path = recorded.save(tmp_path / "rec")
    other = _other_node_recording()
    with pytest.raises(mic.errors.RecordingError) as info:
        other.save(path)
    assert str(info.value) == (f"{path} already holds a recording; pass overwrite=True to "
                               "replace it whole, or save to a new path")
    assert len(mic.load(path).events) == 10               # untouched
    other.save(path, overwrite=True)
    assert [p.name for p in (path / "events").iterdir()] == ["node=other@host"]   # not mixed
    loaded = mic.load(path)
    assert len(loaded.events) == 2 and loaded.node == "other@host"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]     # no sibling left behind


def test_files_that_are_not_a_recording_are_never_replaced(recorded, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(mic.errors.RecordingError, match="holds files that are not a "
                                                            "microscope recording"):
            recorded.save(tmp_path / "notes", overwrite=overwrite)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()                     # an empty folder is fine
    assert len(mic.load(recorded.save(tmp_path / "empty")).events) == 10


def test_the_quickstart_resaves_its_recording_whole(tmp_path, monkeypatch):
    """`microscope demo --out D` twice: the notebook saves into the same folder, each
    time from a different demo node; one node's events in the end, never two."""
    import nbformat

    from microscope_jupyter.cli import _quickstart_path

    nb = nbformat.read(_quickstart_path(), as_version=4)
    save_cell = next(c.source for c in nb.cells
                     if c.cell_type == "code" and "s.save(" in c.source)
    monkeypatch.chdir(tmp_path)
    for node in ("demo-1@host", "demo-2@host"):
        exec(save_cell, {"s": _other_node_recording(node=node), "mic": mic})
    folder = next(tmp_path.iterdir())
    assert [p.name for p in (folder / "events").iterdir()] == ["node=demo-2@host"]
    assert mic.load(folder).node == "demo-2@host"


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import pyarrow.parquet as pq
    from fake_agent import A, B, FakeAgent
    from microscope_jupyter.beam.terms import Atom
    from microscope_jupyter.saved import OfflineSession
    from microscope_jupyter.store.event_store import EventStore

    store = EventStore()
    agent = FakeAgent(store)
    for i in range(200_000):
        agent.event("send", A, B, payload=(Atom("big"), i, b"x" * 64))
    agent.flush()
    write = pq.write_table
    def write_then_stall(table, where, **kw):   # the test kills us here: mid-save
        write(table, where, **kw)
        Path(sys.argv[2]).write_text(str(where))
        time.sleep(120)
    pq.write_table = write_then_stall
    OfflineSession(store, {"node": "demo@host"}, None).save(sys.argv[1], overwrite=True)
""")


def test_a_writer_killed_mid_save_leaves_the_old_recording_intact(recorded, tmp_path):
    path = recorded.save(tmp_path / "rec")
    marker = tmp_path / "wrote-one-file"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():              # a condition, not a fixed sleep
            assert writer.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    finally:
        writer.kill()
    assert "events.parquet" in marker.read_text()    # killed after writing part of it
    loaded = mic.load(path)                          # the old one, whole
    assert len(loaded.events) == 10 and loaded.store.seen == 17
    half = [p.name for p in tmp_path.iterdir() if p.name.startswith(".rec.saving-")]
    assert len(half) == 1                            # the half-written copy, beside it
    _other_node_recording().save(path, overwrite=True)   # the next save sweeps it away
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec", "wrote-one-file"]


# -- what mic.load checks ----------------------------------------------------------------


def _flip_footer_byte(file):
    data = bytearray(file.read_bytes())
    data[-20] ^= 0xFF                   # in the Parquet footer (schema, row groups)
    file.write_bytes(bytes(data))


def _flip_page_byte(file):
    data = bytearray(file.read_bytes())
    data[len(data) // 3] ^= 0x01        # one bit, inside a data page
    file.write_bytes(bytes(data))


def _metadata(path, **changes):
    meta = json.loads((path / "metadata.json").read_text())
    (path / "metadata.json").write_text(json.dumps({**meta, **changes}))


def _mix_in_another_recording(path):
    other = _other_node_recording().save(path.parent / "other")
    shutil.copytree(other / "events" / "node=other@host", path / "events" / "node=other@host")


@pytest.mark.parametrize("damage, message", [
    (lambda p: _flip_footer_byte(p / "ids.parquet"), "ids.parquet is damaged ("),
    (lambda p: _flip_page_byte(p / "events" / "node=demo@host" / "events.parquet"),
     "events/node=demo@host/events.parquet is damaged ("),
    (lambda p: (p / "metadata.json").write_text("{not json"), "metadata.json is not valid JSON"),
    (lambda p: (p / "metadata.json").write_text("[1, 2]"),
     "metadata.json holds a JSON list, not a recording's metadata"),
    (lambda p: _metadata(p, annotations="oops"), "metadata.json: 'annotations' is 'oops'"),
    (lambda p: _metadata(p, format_version=99), "was saved in format 99; this microscope reads "
                                                "formats 1 to 3: upgrade microscope-jupyter"),
    (lambda p: shutil.rmtree(p / "events"), "is partial: the events folder is missing. Load what "
                                            "is there with mic.load(path, partial=True)"),
    (lambda p: (p / "names.parquet").unlink(), "is partial: names.parquet is missing"),
    (_mix_in_another_recording, "mixes two recordings: 12 events where its metadata says 10"),
])
def test_load_says_in_one_line_what_is_wrong(recorded, tmp_path, damage, message):
    path = recorded.save(tmp_path / "rec")
    damage(path)
    with pytest.raises(mic.errors.RecordingError) as info:
        mic.load(path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)      # generic handlers still catch it


def test_a_partial_recording_loads_only_with_partial_and_says_what_is_missing(recorded, tmp_path,
                                                                               caplog):
    path = recorded.save(tmp_path / "rec")
    shutil.rmtree(path / "events")
    (path / "names.parquet").unlink()
    loaded = mic.load(path, partial=True)
    assert loaded.missing == ["names.parquet is missing", "the events folder is missing"]
    assert "partial, loaded without: names.parquet is missing; the events folder is missing" \
        in caplog.text
    assert len(loaded.events) == 0 and loaded.findings().empty
    assert mic.load(recorded.save(tmp_path / "whole")).missing == []
