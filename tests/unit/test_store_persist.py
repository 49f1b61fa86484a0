"""Saved sessions: the directory layout, a faithful round trip, no secrets, SQL."""

from __future__ import annotations

import json

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
    (path / "relations.parquet").unlink()       # as written by the first format
    loaded = mic.load(path)
    snap = loaded.time_travel().snapshot_at(5)
    worker_b = snap[snap["name"] == "Demo.WorkerB"].iloc[0]
    assert worker_b["links"] == [] and worker_b["state"] == {Atom("n"): 2}
