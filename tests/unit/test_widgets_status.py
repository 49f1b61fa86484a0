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
