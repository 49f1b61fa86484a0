"""Metrics and the dashboard from a hand-built recording."""

from __future__ import annotations

from fake_agent import B, MS, demo_recording as recorded, updates

from microscope_jupyter.beam.terms import Atom

from microscope_jupyter.analysis.metrics import METRIC_COLUMNS, Dashboard


def build(agent):
    updates(agent, 0, 30, 10, lambda n: 1 if n % 10 else 40)
    for n, length in enumerate([0, 5, 12, 3]):
        agent.event("mailbox", B, aux=length, ts=(n * 100 + 5) * MS)
    # sampled vitals: 100 ms apart, 5,000 then 20,000 reductions done
    # (the refc binaries' bytes are read on some samples only)
    for n, (memory, heap, reductions, binary) in enumerate(
            [(2000, 233, 1000, 500), (8000, 987, 6000, None), (9000, 987, 26000, 70_000)]):
        vitals = {Atom("memory"): memory, Atom("heap_words"): heap,
                  Atom("reductions"): reductions}
        if binary is not None:
            vitals[Atom("binary_bytes")] = binary
        agent.event("vitals", B, aux=memory, ts=(n * 100 + 6) * MS, payload=vitals)


def test_metrics_are_tidy_and_true_to_the_events():
    s = recorded(build)
    table = s.metrics()
    assert list(table.columns) == METRIC_COLUMNS
    mailbox = table[table["metric"] == "mailbox_len"]
    assert mailbox["value"].tolist() == [0, 5, 12, 3] and set(mailbox["name"]) == {"Demo.WorkerB"}
    by_metric = {m: rows["value"].tolist() for m, rows in table.groupby("metric")}
    assert by_metric["memory_bytes"] == [2000, 8000, 9000]
    assert by_metric["heap_words"] == [233, 987, 987]
    assert by_metric["binary_bytes"] == [500, 70_000]
    # a rate needs a span: none for the first sample
    assert [round(v) for v in by_metric["reductions_per_s"]] == [50_000, 200_000]
    callbacks = table[table["metric"] == "callback_ms"]
    assert len(callbacks) == 30 and sorted(callbacks["value"].unique()) == [1.0, 40.0]
    assert set(callbacks["detail"]) == {"handle_info of {:update, _}"}
    rate = table[table["metric"] == "events_per_s"]
    # every event of B in 100 ms windows, as events per second
    assert rate.loc[rate["name"] == "Demo.WorkerB", "value"].sum() / 10 == \
        (s.events["name"] == "Demo.WorkerB").sum()
    assert table["ts"].is_monotonic_increasing


def test_the_dashboard_draws_each_metric_and_inlines_plotly_once():
    s = recorded(build)
    board = s.dashboard(["Demo.WorkerB"])
    names = [trace.name for trace in board.figure.data]
    assert "Demo.WorkerB memory" in names
    assert "Demo.WorkerB mailbox (4 samples)" in names
    assert "Demo.WorkerB: handle_info of {:update, _}" in names
    Dashboard._plotly_shown = False
    first, second = board._repr_html_(), s.dashboard()._repr_html_()
    assert len(first) > 1_000_000 > len(second)   # plotly.js once, in the first
    assert "cdn" not in first.lower().split("<div")[0]


def test_the_dashboard_carries_a_still_picture_its_script_takes_away():
    import base64
    import re

    s = recorded(build)
    html = s.dashboard(["Demo.WorkerB"])._repr_html_()
    still = re.search(r'<img class="mic-dashboard-still"[^>]*src="data:image/svg\+xml;base64,'
                      r'([A-Za-z0-9+/=]+)"', html)
    assert still, html[:500]
    svg = base64.b64decode(still.group(1)).decode()
    assert svg.lstrip().startswith("<svg") and "mailbox length" in svg
    # first the picture, then the figure, then the script that removes the picture
    assert html.index("mic-dashboard-still") < html.index("Plotly.newPlot") \
        < html.rindex("still.remove()")


def test_a_dashboard_with_no_browser_to_draw_its_picture_says_so(monkeypatch):
    s = recorded(build)
    board = s.dashboard()

    def no_chrome(**_):
        raise RuntimeError("Kaleido requires Google Chrome to be installed.")
    monkeypatch.setattr(board.figure, "to_image", no_chrome)
    html = board._repr_html_()
    assert ('<p class="mic-dashboard-still">(no still picture of this dashboard: Kaleido requires '
            "Google Chrome to be installed.; it needs kaleido and a Chrome or Chromium)</p>") in html
    assert "Plotly.newPlot" in html          # the figure itself is all there


def test_the_dashboard_names_each_cause_where_its_evidence_begins():
    def crashing(agent):
        build(agent)
        agent.event("exit", B, payload=Atom("boom"), ts=400 * MS)

    s = recorded(crashing)
    board = s.dashboard()
    labels = [a.text for a in board.figure.layout.annotations]
    assert "crash restart" in labels
    crash_at = s.events.loc[s.events["kind"] == "exit", "ts"].iloc[0]
    marked = [shape.x0 for shape in board.figure.layout.shapes if shape.line.color == "#8e44ad"]
    assert any(str(crash_at)[:19] in str(x)[:19].replace("T", " ") or x == crash_at
               for x in marked)


def test_sparse_mailboxes_draw_their_points_on_whole_ticks_and_an_empty_panel_says_so():
    s = recorded(build)              # WorkerB's mailbox: 4 samples, at most 12; no long GC
    figure = s.dashboard(["Demo.WorkerB"]).figure
    mailbox = next(t for t in figure.data if t.name.startswith("Demo.WorkerB mailbox"))
    assert mailbox.name == "Demo.WorkerB mailbox (4 samples)" and "markers" in mailbox.mode
    assert figure.layout.yaxis.tickformat == ",d" and figure.layout.yaxis.dtick is None
    notes = [a.text for a in figure.layout.annotations]
    assert any(n.startswith("no long garbage collection in the recording") for n in notes), notes
    assert figure.layout.legend.orientation == "h"     # under the plot, not eating its width
