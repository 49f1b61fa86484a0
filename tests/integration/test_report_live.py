"""A report of a live session on the demo node: the crash, the notes and the
widgets are in it, and the node's cookie is not."""

from __future__ import annotations

from nodes import wait_until


def record_the_crash(demo):
    """WorkerA and WorkerB traced until the 10th update crashes WorkerB."""
    with demo.trace("Demo.WorkerA", "Demo.WorkerB"):
        demo.demo.start_updates(10)
        wait_until(lambda: (demo.findings()["kind"] == "crash").any())
        demo.demo.stop_updates()


def test_a_live_sessions_report_has_the_crash_and_the_notes_and_no_cookie(demo, demo_node,
                                                                          tmp_path):
    record_the_crash(demo)
    crash = demo.findings().query("kind == 'crash'").iloc[0]
    note = demo.annotate(crash, "the checkpoint tuple has no clause", author="ana")
    assert note["target"] == "finding: crash of Demo.WorkerB" and note["pid"] == crash["pid"]
    path = demo.report(tmp_path / "live.html", question="Why does WorkerB crash?", frames=20)
    page = path.read_text()
    assert "Why does WorkerB crash?" in page and "function_clause" in page
    assert "the checkpoint tuple has no clause" in page
    for kind in ("sequence_diagram", "timeline", "time_travel", "supervision_tree"):
        assert f'data-kind="{kind}"' in page, kind
    assert demo_node.cookie not in page


def test_a_live_recording_exports_to_perfetto_with_every_message_as_an_arrow(demo, demo_node,
                                                                              tmp_path):
    import json

    record_the_crash(demo)
    trace = json.loads(demo.to_perfetto(tmp_path / "demo.json").read_text())
    events = trace["traceEvents"]
    threads = {e["args"]["name"].split(" ")[0] for e in events if e["name"] == "thread_name"}
    assert {"Demo.WorkerA", "Demo.WorkerB"} <= threads
    messages = demo.messages()
    received = int((messages["received_at"].notna() & messages["send_seq"].notna()).sum())
    assert sum(e["ph"] == "s" for e in events) == received > 0
    # the update WorkerB crashed on ends in no callback: a receive slice holds its arrow
    assert any(e["name"].startswith("exit ") and "function_clause" in e["name"] for e in events)
    assert any(e.get("cat") == "finding" and e["name"] == "error: crash" for e in events)
    # the updates WorkerA sent to the pid WorkerB had before its restart: lost, and shown so
    lost = int(messages["received_at"].isna().sum())
    assert sum(e["name"].startswith("lost ") for e in events if e["ph"] == "i") == lost
    assert demo_node.cookie not in json.dumps(trace)
