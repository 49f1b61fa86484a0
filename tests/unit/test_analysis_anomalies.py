"""Anomalies from hand-built recordings: traffic that stopped or surged, a
latency shift, and nothing on steady behaviour."""

from __future__ import annotations

import numpy as np

from fake_agent import A, MS, demo_recording as recorded, updates
from microscope_jupyter.beam.terms import Atom


def test_steady_behaviour_has_no_anomaly():
    rng = np.random.default_rng(3)
    found = recorded(lambda a: updates(a, 0, 200, 10, lambda n: int(rng.integers(1, 3))))
    assert found.anomalies().empty


def test_a_latency_shift_in_the_later_half():
    found = recorded(lambda a: updates(a, 0, 100, 10, lambda n: 1 if n < 50 else 6)).anomalies()
    assert list(found["kind"]) == ["latency"]
    row = found.iloc[0]
    assert row["process"] == "Demo.WorkerB" and row["what"] == "handle_info of {:update, _}"
    assert row["baseline"] == 1000 and row["now"] == 6000 and row["p_value"] < 0.01


def test_traffic_that_stopped_and_traffic_that_surged():
    # 50 updates in the first second, none in the second: the pair stopped
    stopped = recorded(lambda a: (updates(a, 0, 50, 20, lambda n: 1),
                                  a.event("exit", A, payload=Atom("normal"), ts=2000 * MS)))
    rates = stopped.anomalies()
    rates = rates[rates["kind"] == "rate"]
    assert list(rates["what"]) == ["Demo.WorkerA -> Demo.WorkerB"]
    assert "stopped" in rates["summary"].iloc[0] and rates["now"].iloc[0] == 0
    # ten times the traffic against a baseline recording
    base = recorded(lambda a: updates(a, 0, 20, 50, lambda n: 1))
    busy = recorded(lambda a: updates(a, 0, 200, 5, lambda n: 1))
    surge = busy.anomalies(base)
    assert list(surge["kind"]) == ["rate"] and surge["now"].iloc[0] > 5 * surge["baseline"].iloc[0]


def test_traffic_that_started_is_said_so_not_infinitely_faster():
    # a pair silent for the first second, busy in the second
    started = recorded(lambda a: (a.event("send", A, A, payload=Atom("tick"), ts=0),
                                  updates(a, 1000, 50, 20, lambda n: 1)))
    rates = started.anomalies()
    rates = rates[rates["kind"] == "rate"]
    assert list(rates["what"]) == ["Demo.WorkerA -> Demo.WorkerB"], rates
    assert rates["baseline"].iloc[0] == 0
    assert "started: none in the baseline" in rates["summary"].iloc[0]
    assert "inf" not in rates["summary"].iloc[0]
