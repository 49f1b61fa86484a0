"""A report of a live session on the demo node: the crash, the notes and the
widgets are in it, and the node's cookie is not."""

from __future__ import annotations

from nodes import wait_until


def test_a_live_sessions_report_has_the_crash_and_the_notes_and_no_cookie(demo, demo_node,
                                                                          tmp_path):
    with demo.trace("Demo.WorkerA", "Demo.WorkerB"):
        demo.demo.start_updates(10)
        wait_until(lambda: (demo.findings()["kind"] == "crash").any())
        demo.demo.stop_updates()
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
