"""s.anomalies() on real nodes: a handler that gets slower, traffic that stops,
against the earlier half of a recording and against a good run's recording."""

from __future__ import annotations

import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom
from nodes import load_test_module, wait_until


@pytest.fixture
def worker(node_factory, tmp_path):
    node = node_factory("otp25", prefix="anom")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_test_module(s, "mic_load", tmp_path)
        pid = s.rpc("mic_load", "start_worker", [Atom("mic_worker")])
        yield node, s, pid
    node.stop()


def handled(s) -> int:
    return s.eval_erlang("maps:get(handled, sys:get_state(mic_worker)).")


def feed(s, pid, work_ms: int, count: int) -> None:
    """`count` casts, one every 10 ms, each taking `work_ms` ms; waits until handled."""
    start = handled(s)
    s.rpc("mic_load", "feed", [pid, 10, work_ms, count])
    wait_until(lambda: handled(s) >= start + count, timeout=60)


def test_a_handler_that_got_slower_against_the_earlier_half(worker):
    _, s, pid = worker
    rec = s.trace("mic_worker")
    feed(s, pid, 1, 40)
    feed(s, pid, 8, 40)
    rec.stop()
    found = s.anomalies()
    slow = found[found["kind"] == "latency"]
    assert len(slow) == 1, found[["kind", "summary"]].to_string()
    row = slow.iloc[0]
    assert row["process"] == "mic_worker" and row["what"] == "handle_cast of {:work, _, _}"
    assert row["now"] > 4 * row["baseline"] and row["z"] > 3.5 and row["p_value"] < 0.01
    states = s.states("mic_worker")
    assert set(row["evidence"]) <= set(states.loc[states["duration_us"] > 5000, "seq"])


def test_against_a_good_runs_recording(worker, tmp_path):
    node, s, pid = worker
    rec = s.trace("mic_worker")
    feed(s, pid, 1, 30)
    rec.stop()
    s.save(tmp_path / "good")
    good = mic.load(tmp_path / "good")
    with mic.attach(node.name, cookie=node.cookie) as bad:   # a fresh recording
        rec = bad.trace("mic_worker")
        feed(bad, pid, 8, 30)
        rec.stop()
        found = bad.anomalies(good)
    assert list(found["kind"]) == ["latency"], found[["kind", "summary"]].to_string()
    assert found["what"].iloc[0] == "handle_cast of {:work, _, _}"
    assert found["now"].iloc[0] > 4 * found["baseline"].iloc[0]
    # the same run against itself: nothing stands out
    assert good.anomalies(good).empty
