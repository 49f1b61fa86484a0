"""s.to_perfetto: the recording as JSON trace events, checked against the format
Perfetto and chrome://tracing read (see ../shared/facts.md)."""

from __future__ import annotations

import json

import pytest

from fake_agent import crash_after_updates, demo_recording
from microscope_jupyter.errors import MicroscopeError
from microscope_jupyter.saved import OfflineSession
from microscope_jupyter.store.event_store import EventStore

PHASES = {"X", "i", "M", "s", "f"}


def exported(tmp_path):
    s = demo_recording(crash_after_updates)
    return s, json.loads(s.to_perfetto(tmp_path / "trace.json").read_text())


def test_every_event_is_well_formed(tmp_path):
    _, trace = exported(tmp_path)
    events = trace["traceEvents"]
    assert events and {e["ph"] for e in events} <= PHASES
    for e in events:
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int), e
        if e["ph"] != "M":
            assert isinstance(e["ts"], float) and e["ts"] >= 0, e
        if e["ph"] == "X":
            assert e["dur"] > 0, e
    # every flow starts inside a slice on its sender's track and ends in one on the receiver's
    slices = [e for e in events if e["ph"] == "X"]

    def inside(point):
        return any(s["pid"] == point["pid"] and s["tid"] == point["tid"]
                   and s["ts"] <= point["ts"] <= s["ts"] + s["dur"] for s in slices)
    flows = [e for e in events if e["ph"] in "sf"]
    assert flows and all(inside(f) for f in flows)
    starts = {f["id"] for f in flows if f["ph"] == "s"}
    assert starts == {f["id"] for f in flows if f["ph"] == "f"}


def test_tracks_callbacks_messages_and_findings_are_the_recordings(tmp_path):
    s, trace = exported(tmp_path)
    events = trace["traceEvents"]
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert any(n.startswith("Demo.WorkerB ") for n in names), names
    callbacks = [e for e in events if e.get("cat") == "callback"]
    assert len(callbacks) == len(s.states())
    assert "handle_info {:update, _}" in {e["name"] for e in callbacks}
    messages = s.messages()
    received = (messages["received_at"].notna() & messages["send_seq"].notna()).sum()
    assert len([e for e in events if e["ph"] == "s"]) == received
    findings = [e for e in events if e.get("cat") == "finding"]
    assert {e["name"].split(": ", 1)[1] for e in findings} == set(s.findings(grouped=False)["kind"])
    assert any(e["name"].startswith("exit ") for e in events if e["ph"] == "i")


def test_an_empty_recording_says_so(tmp_path):
    with pytest.raises(MicroscopeError, match="the recording is empty"):
        OfflineSession(EventStore(), {}, None).to_perfetto(tmp_path / "t.json")
