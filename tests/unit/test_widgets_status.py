"""The trace status line: HTML where a notebook shows it, plain text elsewhere."""

from microscope_jupyter.widgets.status import TraceStatus


def test_the_trace_status_line_is_html_in_a_notebook_and_text_elsewhere():
    status = {"state": "running", "events": 12345, "rate": 678.9, "dropped": 3, "elapsed_s": 2.5,
              "state_hooks": {"pending": 1}, "message": None}
    text = repr(TraceStatus(status))
    assert text == ("recording: 12,345 events, 679/s, 3 dropped, 2.5 s, "
                    "state hooks pending on 1 process(es)")
    html = TraceStatus(status)._repr_html_()
    assert "&#9679;" in html and "<b>recording</b>" in html and "'" not in html
    assert '<b style="color:#b06000">3 dropped</b>' in html        # loss stands out
    done = TraceStatus({**status, "state": "duration", "dropped": 0, "state_hooks": {"pending": 0},
                    "message": "Tracing stopped after its duration of 1 s."})
    assert repr(done) == ("duration: 12,345 events, 679/s, 0 dropped, 2.5 s. "
                          "Tracing stopped after its duration of 1 s.")
    assert "#d93025" not in done._repr_html_()          # a normal finish is not red


def test_what_the_start_found_follows_why_it_stopped():
    status = {"state": "max_events", "events": 10, "rate": 5.0, "dropped": 0, "elapsed_s": 2.0,
              "state_hooks": {"pending": 0}, "message": "Tracing stopped after 10 events.",
              "notes": ["app@host has no BeamMicroscope module."]}
    assert repr(TraceStatus(status)) == ("max_events: 10 events, 5/s, 0 dropped, 2.0 s. Tracing "
                                         "stopped after 10 events. app@host has no BeamMicroscope "
                                         "module.")
    running = TraceStatus({**status, "state": "running", "message": None})
    assert repr(running).endswith("2.0 s. app@host has no BeamMicroscope module.")
    assert "app@host has no BeamMicroscope module." in running._repr_html_()
