"""Widgets against a live node: the supervision tree's details panel and its trace button."""

from __future__ import annotations

import time

import pytest

from microscope_jupyter import Atom
from microscope_jupyter.errors import QueryError
from microscope_jupyter.widgets import SupervisionTree


def test_process_details_of_a_genserver_and_a_busy_one(demo):
    s = demo
    worker_b = s.process("Demo.WorkerB")
    assert worker_b["state"][Atom("count")] == 0 and worker_b["state_error"] is None
    sup = s.rpc("erlang", "whereis", [Atom("Elixir.Demo.Supervisor")])
    assert sup in worker_b["links"]
    assert worker_b["message_queue_len"] == 0 and worker_b["reductions"] > 0
    with pytest.raises(QueryError, match="Demo.Nope is not a registered name on the node"):
        s.process("Demo.Nope")
    # a GenServer stuck in a 3 s callback: said within the timeout, not waited for
    busy = s.eval_erlang("{ok, P} = 'Elixir.Agent':start(fun() -> 0 end), "
                         "'Elixir.Agent':cast(P, fun(S) -> timer:sleep(3000), S end), P.")
    t0 = time.monotonic()
    details = s.process(str(busy), timeout=0.3)
    assert time.monotonic() - t0 < 2.0
    assert details["state"] is None and details["state_error"] == "timeout"
    assert s.process(str(busy), timeout=5)["state"] == 0     # once it is free again


def test_tree_widget_on_a_live_node_shows_details_and_traces(demo):
    s = demo
    tree = SupervisionTree(s)
    assert tree.user_apps == ["demo"] and tree.as_of
    by_name = {n["name"]: n for n in tree.nodes if n.get("name")}
    worker_b = by_name["Demo.WorkerB"]
    assert worker_b["reductions"] > 0 and worker_b["application"] == "demo"
    tree.selected = worker_b["pid"]
    assert tree.details["state"] == "%{count: 0, last: nil}"
    assert tree.details["links"] == ["Demo.Supervisor"]
    tree._on_custom(tree, {"event": "trace", "pid": worker_b["pid"], "seconds": 0.5}, [])
    assert "tracing" in tree.details["trace"]
    rec = s.recordings[-1]
    rec.wait(10)
    assert rec.status()["state"] == "duration" and rec.status()["events"] > 0
    # live: the tree reads the node again every interval, until switched off
    reads = []
    read = tree.refresh
    tree.refresh = lambda: (reads.append(1), read())
    tree.interval = 0.1
    tree.live = True
    try:
        deadline = time.monotonic() + 10
        while len(reads) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(reads) >= 3
    finally:
        tree.live = False
    settled = len(reads)
    time.sleep(0.3)
    assert len(reads) <= settled + 1
