"""s.report(path) and microscope report: one HTML file that works offline.

Chromium opens the file with every request that is not the file itself
refused: each widget must draw from the inlined bundles and state, answer
the pointer (the sequence diagram's hover) and the time-travel slider
(moving through the frames computed when the report was written), and show
the annotations. With scripts disabled, the static renderings and the
annotations are what a reader sees.
"""

from __future__ import annotations

import re

from browsing import offline_page
from fake_agent import annotated_recording

KINDS = {"sequence_diagram", "timeline", "time_travel", "supervision_tree"}


def test_a_session_report_draws_and_answers_offline(browser, tmp_path, screenshots):
    s = annotated_recording()
    path = s.report(tmp_path / "incident.html", title="Incident 481", frames=40)
    context, page, refused = offline_page(browser, path)
    try:
        page.wait_for_function("document.body.dataset.micReady === '1'", timeout=30_000)
        live = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
            '.mic-report-widget')].map(b => [b.dataset.kind, b.dataset.live]))""")
        assert live == {k: "1" for k in KINDS}, live
        assert page.locator("h1").inner_text() == "Incident 481"
        assert "crash" in page.locator("table.mic-findings").inner_text()
        # the annotations: in their section, and under every widget
        notes = page.locator("main > .mic-note").all_inner_texts()
        assert any("no clause for the checkpoint" in n and "ana" in n for n in notes), notes
        for kind in KINDS:
            strip = page.locator(f'.mic-report-widget[data-kind="{kind}"] .notes .note')
            assert strip.count() == 3, kind

        # hover: the sequence diagram's tooltip names the message under the pointer
        seq = page.locator('.mic-report-widget[data-kind="sequence_diagram"] .mic-live')
        xs = [int(x) for x in seq.get_attribute("data-lane-x").split(",")]
        box = seq.locator(".viewport").bounding_box()
        page.mouse.move(box["x"] + (xs[0] + xs[1]) / 2, box["y"] + 34 + 22 * 2 + 11)
        assert "{:update, 2}" in seq.locator(".tip").inner_text()

        # the slider: every position answers from the frames kept in the page
        tt = page.locator('.mic-report-widget[data-kind="time_travel"] .mic-live')
        before = tt.locator(".event").inner_text()
        tt.locator("input.slider").evaluate(
            "el => { el.value = String(el.max); el.dispatchEvent(new Event('input')); }")
        last = len(s.store) - 1
        assert tt.get_attribute("data-cursor") == str(last)
        after = tt.locator(".event").inner_text()
        assert after != before and after.startswith(f"#{last} ") and "exit" in after
        assert "exited" in tt.locator("tr.dead").first.inner_text()
        tt.locator("button.prev").click()                     # a step, to the previous frame
        assert int(tt.get_attribute("data-cursor")) < last
        # a note's click moves the cursor to it, and the note at the cursor is marked
        tt.locator('.notes .note[data-note="2"]').click()
        assert tt.get_attribute("data-cursor") == "4"
        assert "here" in tt.locator('.notes .note[data-note="2"]').get_attribute("class")
        # the tree: a click shows the process's details, kept in the page; live
        # refresh, which needs a kernel, is off and says why
        tree = page.locator('.mic-report-widget[data-kind="supervision_tree"] .mic-live')
        row = tree.locator(".row[data-pid]").first
        pid = row.get_attribute("data-pid")
        row.click()
        assert pid in tree.locator(".details").inner_text()
        assert "need the notebook's kernel" not in tree.locator(".details").inner_text()
        assert tree.locator("input.live").is_disabled()
        assert "needs the notebook's kernel" in tree.locator("label:has(input.live)").get_attribute("title")
        assert tree.locator("button.trace").count() == 0
        page.screenshot(path=str(screenshots / "report_offline.png"), full_page=True)
    finally:
        context.close()
    assert refused == [] and page.errors == page.console == [], \
        (refused, page.errors, page.console)


def test_with_scripts_blocked_the_report_shows_static_pictures_and_notes(browser, tmp_path):
    s = annotated_recording()
    path = s.report(tmp_path / "incident.html", frames=10)
    context, page, refused = offline_page(browser, path, scripts=False)
    try:
        statics = page.locator(".mic-report-widget .mic-static")
        assert statics.count() == len(KINDS)
        assert all(statics.nth(i).is_visible() for i in range(statics.count()))
        assert "{:update, 2}" in page.locator(
            '.mic-report-widget[data-kind="sequence_diagram"] .mic-static').inner_text()
        assert "Demo.WorkerB" in page.locator(
            '.mic-report-widget[data-kind="supervision_tree"] .mic-static').inner_text()
        text = page.locator("main").inner_text()
        assert "no clause for the checkpoint" in text and "callbacks slow down here" in text
    finally:
        context.close()
    assert refused == []


def test_saved_and_loaded_the_notes_come_back(tmp_path):
    import microscope_jupyter as mic

    s = annotated_recording()
    s.save(tmp_path / "rec")
    loaded = mic.load(tmp_path / "rec")
    assert loaded.annotations().drop(columns="created_at").equals(
        s.annotations().drop(columns="created_at"))
    assert re.search(r"finding: crash of Demo\.WorkerB", loaded.annotations()["target"].iloc[0])


def test_an_executed_notebook_becomes_a_live_offline_report(browser, tmp_path):
    """`microscope report`: the widget outputs of a notebook executed by nbclient
    (which keeps widget state) drawn live from the page, with no CDN."""
    import nbformat
    from nbclient import NotebookClient

    from microscope_jupyter.cli import main

    annotated_recording().save(tmp_path / "rec")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(f"import microscope_jupyter as mic\n"
                                          f"s = mic.load({str(tmp_path / 'rec')!r})"),
                nbformat.v4.new_code_cell("mic.widgets.TimeTravel(s, frames=30)"),
                nbformat.v4.new_code_cell("mic.widgets.SequenceDiagram(s)"),
                nbformat.v4.new_code_cell("mic.widgets.ProcessGraph(s)")]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    nbformat.write(nb, tmp_path / "incident.ipynb")
    assert main(["report", str(tmp_path / "incident.ipynb")]) == 0
    context, page, refused = offline_page(browser, tmp_path / "incident.html")
    try:
        page.wait_for_function("document.body.dataset.micReady === '1'", timeout=30_000)
        live = page.evaluate("""() => [...document.querySelectorAll('.mic-report-widget')]
            .map(b => b.dataset.kind + ':' + b.dataset.live)""")
        assert live == ["time_travel:1", "sequence_diagram:1", "process_graph:1"], live
        tt = page.locator('.mic-report-widget[data-kind="time_travel"] .mic-live')
        tt.locator("button.next").click()
        assert tt.get_attribute("data-cursor") not in (None, "0")
        assert tt.locator(".notes .note").count() == 3
        # drawn as in JupyterLab, not restyled by the exported page's output tables
        assert tt.locator("td").first.evaluate("e => getComputedStyle(e).textAlign") == "left"
        # a finding's causal chain is the kernel's to compute: the graph says so
        graph = page.locator('.mic-report-widget[data-kind="process_graph"] .mic-live')
        choice = graph.locator("select.findings option:not([value=''])").first.get_attribute("value")
        graph.locator("select.findings").select_option(choice)
        assert "needs the notebook's kernel" in graph.inner_text()
    finally:
        context.close()
    assert refused == [] and page.errors == page.console == [], \
        (refused, page.errors, page.console)
