"""s.annotate: each kind of target resolved to events (and a process where it
has one), the author, and one clear line for what cannot be annotated."""

from __future__ import annotations

import pytest
from fake_agent import annotated_recording, crash_after_updates, demo_recording

from microscope_jupyter.errors import MicroscopeError


def test_each_kind_of_target():
    s = demo_recording(crash_after_updates)
    event = s.annotate(7, "an update", author="ana")
    assert (event["seq"], event["end_seq"], event["name"]) == (7, 7, s.events["name"].iloc[7])
    assert event["target"] == f"event #7 ({s.events['kind'].iloc[7]})"

    lost = s.findings().query("kind == 'lost_message'").iloc[0]
    finding = s.annotate(lost, "the checkpoint died with it", author="ana")
    assert finding["seq"] == lost["first_seq"] and finding["end_seq"] == max(lost["evidence"])
    assert finding["target"] == "finding: lost_message of Demo.WorkerB"
    assert finding["pid"] == lost["pid"]

    cause = s.explain().causes.iloc[0]
    on_cause = s.annotate(cause, "confirmed", author="bo")
    assert (on_cause["seq"], on_cause["end_seq"]) == (min(cause["evidence"]), max(cause["evidence"]))
    assert on_cause["target"] == f"cause: {cause['kind']}"

    ts = s.events["ts"]
    span = s.annotate((ts.iloc[40], ts.iloc[10]), "slow here", author="bo")   # either order
    assert (span["seq"], span["end_seq"]) == (10, 40) and span["target"] == "events #10–#40"

    table = s.annotations()
    assert table["id"].tolist() == [1, 2, 3, 4]
    assert table["author"].tolist() == ["ana", "ana", "bo", "bo"]


def test_the_author_defaults_to_the_environment(monkeypatch):
    s = annotated_recording()
    monkeypatch.setenv("MICROSCOPE_AUTHOR", "carol")
    assert s.annotate(3, "mine")["author"] == "carol"


@pytest.mark.parametrize("target, text, said", [
    (10_000, "x", "event 10000 is outside the recording: seqs run from 0 to"),
    ("Demo.WorkerB", "x", "cannot annotate str 'Demo.WorkerB': give an event seq"),
    (3, "  ", "an annotation needs some text"),
])
def test_what_cannot_be_annotated_says_so_in_one_line(target, text, said):
    s = annotated_recording()
    with pytest.raises(MicroscopeError) as caught:
        s.annotate(target, text)
    assert str(caught.value).startswith(said) and "\n" not in str(caught.value)
    assert len(s.annotations()) == 3      # nothing added
