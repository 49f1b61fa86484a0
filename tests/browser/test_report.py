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

from fake_agent import A, B, MS, demo_recording, updates

from microscope_jupyter.beam.terms import Atom

KINDS = {"sequence_diagram", "timeline", "time_travel", "supervision_tree"}


def crash_after_updates(agent):
    updates(agent, 0, 30, 10, lambda n: 1 if n % 10 else 25)
    agent.event("send", A, peer=B, payload=(Atom("update"), 30, Atom("checkpoint")), ts=305 * MS)
    agent.event("receive", B, payload=(Atom("update"), 30, Atom("checkpoint")), ts=306 * MS)
    agent.event("exit", B, payload=(Atom("function_clause"), []), ts=307 * MS)


def annotated_recording():
    s = demo_recording(crash_after_updates)
    crash = s.findings().query("kind == 'crash'").iloc[0]
    s.annotate(crash, "WorkerB has no clause for the checkpoint message", author="ana")
    s.annotate(4, "the first update, on time", author="bo")
    s.annotate((20, 60), "callbacks slow down here")
    return s


def offline_page(browser, path, scripts=True):
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  java_script_enabled=scripts)
    refused: list[str] = []

    def offline(route):
        if route.request.url.startswith("file://"):
            return route.continue_()
        refused.append(route.request.url)
        return route.abort()

    context.route("**/*", offline)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.goto(path.as_uri())
    return context, page, refused, errors


def test_a_session_report_draws_and_answers_offline(browser, tmp_path, screenshots):
    s = annotated_recording()
    path = s.report(tmp_path / "incident.html", title="Incident 481", frames=40)
    context, page, refused, errors = offline_page(browser, path)
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
        page.screenshot(path=str(screenshots / "report_offline.png"), full_page=True)
    finally:
        context.close()
    assert refused == [] and errors == [], (refused, errors)


def test_with_scripts_blocked_the_report_shows_static_pictures_and_notes(browser, tmp_path):
    s = annotated_recording()
    path = s.report(tmp_path / "incident.html", frames=10)
    context, page, refused, _ = offline_page(browser, path, scripts=False)
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
