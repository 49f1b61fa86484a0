"""Legible at every width and theme, in a real JupyterLab: the widgets on the
quickstart's recording (its own %%trace cell, run against the demo app) and
on a busy recording of ~5k messages, at 400, 800 and 1400 px, in a split
view, and with the theme switched while they are shown.

One JupyterLab and one notebook for the module; each test adds the cells it
needs and looks at what they draw."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from browsing import jupyterlab, kernel, page_error

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "notebooks" / "01_quickstart.ipynb"


def quickstart_trace_cell() -> str:
    """The quickstart's own %%trace cell, so this recording is the quickstart's."""
    cells = nbformat.read(QUICKSTART, as_version=4).cells
    return next(c.source for c in cells if c.source.startswith("%%trace"))


SETUP = ("%load_ext microscope\nimport microscope_jupyter as mic\n"
         "s = %beam_attach --demo")
# The busy recording: WorkerA ticking every millisecond (an update to the pid
# WorkerB had, a call to Stats and its reply, the timer's own message) for ~3.2 s.
BUSY = ("%%trace --for 300ms\nDemo.start_updates(1)\nProcess.sleep(3200)\nDemo.stop_updates()")
AFTER = ("q = mic.load(s.save('quickstart-recording', overwrite=True))\n"
         "print('quickstart', len(q.messages()))")


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    """The notebook: attached to the demo app, the quickstart's trace kept as
    ``q`` (offline), then a busy trace in ``s`` (the quickstart's and ~5k more)."""
    work = tmp_path_factory.mktemp("legible")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c)
                for c in (SETUP, quickstart_trace_cell(), AFTER, BUSY)]
    nbformat.write(nb, work / "legible.ipynb")
    (work / "notes.txt").write_text("a second document, for a split view\n")
    with jupyterlab(work, MICROSCOPE_DEMO_APP=str(ROOT / "examples" / "apps" / "demo")) as lab:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.errors = []
        pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: pg.errors.extend([t for t in [page_error(e)] if t]))
        pg.goto(f"{lab['url']}/lab/tree/legible.ipynb?token={lab['token']}")
        pg.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                             "&& window.jupyterapp.shell.currentWidget.sessionContext "
                             "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                             "&& window.jupyterapp.shell.currentWidget.sessionContext.session"
                             ".kernel", timeout=60_000)
        pg.evaluate("""async () => {
            const nb = window.jupyterapp.shell.currentWidget;
            await nb.sessionContext.ready;
            await window.jupyterapp.commands.execute('notebook:run-all-cells');
        }""")
        pg.wait_for_function("""() => {
            const nb = window.jupyterapp.shell.currentWidget;
            return nb.sessionContext.session.kernel.status === 'idle'
                && [...document.querySelectorAll('.jp-InputArea-prompt')]
                   .every(p => !p.textContent.includes('*'));
        }""", timeout=180_000)
        pg.notebook = pg.evaluate("window.jupyterapp.shell.currentWidget.id")
        yield pg
        kernel(pg, "s.detach()")
        context.close()
        errors = [e for e in pg.errors if "favicon" not in e]
        assert not errors, "\n".join(errors)


def show(page, code: str):
    """Run ``code`` in a new cell at the end; the locator of that cell's output."""
    n = page.evaluate("""async (code) => {
        const nb = window.jupyterapp.shell.currentWidget;
        const n = nb.content.model.cells.length;
        nb.content.model.sharedModel.insertCell(n, { cell_type: 'code', source: code });
        nb.content.activeCellIndex = n;
        await window.jupyterapp.commands.execute('notebook:run-cell');
        return n;
    }""", code)
    out = page.locator(".jp-Notebook .jp-Cell").nth(n).locator(".jp-OutputArea-output").last
    out.wait_for(timeout=60_000)
    return out


def test_the_busy_recording_is_busy(page):
    quick = int(kernel(page, "print(len(q.messages()))").strip())
    busy = int(kernel(page, "print(len(s.messages()) - len(q.messages()))").strip())
    assert quick > 50 and 4000 <= busy <= 12000, (quick, busy)


# -- TimeTravel at every width ----------------------------------------------------

# What a person needs of the table, measured: every cell that has text at
# least ~14 characters wide, no line of a cell holding a character or two
# (text wrapped one character per line), the state column there for every
# process, and nothing cut off at the widget's right edge.
TIME_TRAVEL_PROBLEMS = """(root) => {
    const problems = [], box = root.getBoundingClientRect();
    const rows = [...root.querySelectorAll('tr[data-pid]')];
    if (!rows.length) return ['no rows'];
    for (const tr of rows.slice(0, 12)) {
        const state = tr.children[1];
        const s = state.getBoundingClientRect();
        if (state.textContent.trim() && (s.width < 120 || s.height === 0))
            problems.push(`state of ${tr.dataset.pid} is ${Math.round(s.width)} px wide`);
        for (const td of tr.children) {
            const text = td.textContent.trim();
            if (!text || getComputedStyle(td).display === 'none') continue;
            const r = td.getBoundingClientRect();
            if (r.width < 100) problems.push(`${text.slice(0, 20)}: ${Math.round(r.width)} px wide`);
            if (r.right > box.right + 1) problems.push(`${text.slice(0, 20)}: cut at the right edge`);
            const walk = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
            for (let t = walk.nextNode(); t; t = walk.nextNode()) {
                const range = document.createRange(); range.selectNodeContents(t);
                const lines = new Set([...range.getClientRects()].filter((q) => q.width > 0)
                                      .map((q) => Math.round(q.top))).size;
                if (lines > 2 && t.length / lines < 8)
                    problems.push(`${t.data.slice(0, 20)}: ${t.length} characters on ${lines} lines`);
            }
        }
    }
    for (const c of root.querySelectorAll('.bar > *')) {
        const r = c.getBoundingClientRect();
        if (r.width && r.right > box.right + 1) problems.push(`${c.className} cut at the right edge`);
    }
    return problems;
}"""


def set_width(page, width: int) -> None:
    """The window ``width`` px wide; at under 600 px, the file browser closed
    (as anyone would: open, it leaves the notebook ~70 px)."""
    page.set_viewport_size({"width": width, "height": 1000})
    page.evaluate("(narrow) => narrow ? window.jupyterapp.shell.collapseLeft()"
                  " : window.jupyterapp.shell.expandLeft()", width < 600)
    page.wait_for_timeout(600)     # JupyterLab lays its panels out again


def test_time_travel_stays_legible_at_every_width_and_in_a_split_view(page, screenshots):
    out = show(page, "crash = q.events[q.events['kind'] == 'exit'].iloc[0]\n"
                     "mic.widgets.TimeTravel(q, cursor=int(crash['seq']) - 1)")
    tt = out.locator(".mic-tt")
    tt.wait_for(timeout=30_000)
    try:
        for width in (400, 800, 1400):
            set_width(page, width)
            tt.scroll_into_view_if_needed()
            tt.screenshot(path=str(screenshots / f"lab_time_travel_{width}.png"))
            assert tt.evaluate(TIME_TRAVEL_PROBLEMS) == [], width
        page.evaluate("""() => window.jupyterapp.commands.execute('docmanager:open',
                         {path: 'notes.txt', options: {mode: 'split-right'}})""")
        page.wait_for_timeout(800)
        width = tt.evaluate("(el) => el.getBoundingClientRect().width")
        assert 300 < width < 750, width          # the notebook has half the window
        tt.scroll_into_view_if_needed()
        tt.screenshot(path=str(screenshots / "lab_time_travel_split.png"))
        assert tt.evaluate(TIME_TRAVEL_PROBLEMS) == [], "split view"
    finally:
        close_split(page)
        set_width(page, 1400)


def close_split(page) -> None:
    """Close the second document; the notebook is the current widget again."""
    page.evaluate("""(id) => {
        for (const w of [...window.jupyterapp.shell.widgets('main')])
            if (w.context && w.context.path === 'notes.txt') w.close();
        window.jupyterapp.shell.activateById(id);
    }""", page.notebook)
    page.wait_for_timeout(300)


# -- what a canvas draws, measured ----------------------------------------------

# Every fillText on a canvas whose __texts is a list is recorded as its ink's
# box (measureText) in the canvas's CSS pixels. An opaque fillRect hides what
# it covers whole (the frame's background starts a new frame) and marks what
# it covers in part as cut (a label half under a header).
RECORD_TEXT = """() => {
    if (window.__micTextHook) return;
    window.__micTextHook = true;
    const P = CanvasRenderingContext2D.prototype, fillText = P.fillText, fillRect = P.fillRect;
    const toCss = (ctx, x0, y0, x1, y1) => {
        const t = ctx.getTransform(), c = ctx.canvas;
        const d = c.width / (c.clientWidth || c.width);
        return [(t.a * x0 + t.e) / d, (t.d * y0 + t.f) / d, (t.a * x1 + t.e) / d, (t.d * y1 + t.f) / d];
    };
    P.fillText = function (text, x, y) {
        const log = this.canvas.__texts;
        if (log && String(text).trim()) {
            const m = this.measureText(String(text));
            const [x0, y0, x1, y1] = toCss(this, x - m.actualBoundingBoxLeft, y - m.actualBoundingBoxAscent,
                                           x + m.actualBoundingBoxRight, y + m.actualBoundingBoxDescent);
            log.push({ text: String(text), x0, y0, x1, y1, cut: false });
        }
        return fillText.apply(this, arguments);
    };
    P.fillRect = function (x, y, w, h) {
        const log = this.canvas.__texts;
        if (log && /^#/.test(String(this.fillStyle))) {
            const [x0, y0, x1, y1] = toCss(this, x, y, x + w, y + h);
            this.canvas.__texts = log.filter((t) => {
                const ix = Math.min(x1, t.x1) - Math.max(x0, t.x0), iy = Math.min(y1, t.y1) - Math.max(y0, t.y0);
                if (ix <= 0.5 || iy <= 0.5) return true;
                if (t.x0 >= x0 - 0.5 && t.x1 <= x1 + 0.5 && t.y0 >= y0 - 0.5 && t.y1 <= y1 + 0.5) return false;
                t.cut = true;
                return true;
            });
        }
        return fillRect.apply(this, arguments);
    };
}"""

# The labels of the newest frame: overlapping ink, ink cut by the canvas's
# edge or by something painted over part of it.
TEXT_PROBLEMS = """(el) => {
    const c = el.querySelector('canvas'), W = c.clientWidth, H = c.clientHeight;
    const texts = (c.__texts || []).filter((t) => t.x1 - t.x0 > 0.5);
    const problems = [];
    for (const t of texts) {
        if (t.cut) problems.push(`cut by a later fill: ${t.text}`);
        if (t.x0 < -0.5 || t.y0 < -0.5 || t.x1 > W + 0.5 || t.y1 > H + 0.5)
            problems.push(`clipped by the edge: ${t.text} at ${[t.x0, t.y0, t.x1, t.y1].map(Math.round)}`);
    }
    const sorted = [...texts].sort((a, b) => a.y0 - b.y0);
    for (let i = 0; i < sorted.length; i++)
        for (let j = i + 1; j < sorted.length && sorted[j].y0 < sorted[i].y1; j++) {
            const a = sorted[i], b = sorted[j];
            if (Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0) > 0.5 && Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0) > 0.5)
                problems.push(`overlap: ${a.text} | ${b.text}`);
        }
    return { labels: texts.map((t) => t.text), boxes: texts.map((t) => [t.x0, t.y0, t.x1, t.y1]),
             problems: problems.slice(0, 12) };
}"""


def drawn_text(page, widget) -> dict:
    """What ``widget``'s canvas draws in a fresh frame: {labels, boxes, problems}."""
    page.evaluate(RECORD_TEXT)
    # every canvas paints again when the theme's attribute is set (even to itself)
    # (and a scrolled one on its scroll event)
    widget.evaluate("""(el) => { el.querySelector('canvas').__texts = [];
        document.body.setAttribute('data-jp-theme-name', document.body.getAttribute('data-jp-theme-name'));
        const v = el.querySelector('.viewport'); if (v) v.dispatchEvent(new Event('scroll')); }""")
    page.wait_for_timeout(450)
    return widget.evaluate(TEXT_PROBLEMS)


def show_diagram(page, code: str):
    out = show(page, code)
    seq = out.locator(".mic-seq")
    seq.wait_for(timeout=30_000)
    page.wait_for_function("(el) => el.dataset.ready === '1'",
                           arg=seq.locator("xpath=..").element_handle(), timeout=10_000)
    seq.scroll_into_view_if_needed()
    return seq


# the queue band's tint over the light theme's background (rgba(227,116,0,.28) on white)
BAND_UNDER_TEXT = """([c, boxes]) => {
    const d = c.width / c.clientWidth, g = c.getContext('2d');
    let n = 0;
    for (const [x0, y0, x1, y1] of boxes) {
        const w = Math.max(1, Math.round((x1 - x0) * d)), h = Math.max(1, Math.round((y1 - y0) * d));
        const px = g.getImageData(Math.round(x0 * d), Math.round(y0 * d), w, h).data;
        let tinted = 0;
        for (let i = 0; i < px.length; i += 4)
            if (Math.abs(px[i] - 247) < 9 && Math.abs(px[i + 1] - 216) < 12 && Math.abs(px[i + 2] - 184) < 12) tinted++;
        if (tinted >= 4) n++;
    }
    return n;
}"""


def test_time_mode_opens_on_the_whole_recording_and_prints_no_label_over_another(page, screenshots):
    seq = show_diagram(page, "tm = mic.widgets.SequenceDiagram(q, procs=['Demo.WorkerA', 'Demo.WorkerB', "
                             "'Demo.Stats'], mode='time')\ntm")
    host = seq.locator("xpath=..")
    span = float(kernel(page, "m = tm.msgs\nprint(max([e for e in m['end_us'] if e is not None]"
                              " + list(m['send_us'])))"))
    room = seq.locator(".viewport").evaluate("(v) => v.clientHeight")
    scale = float(host.get_attribute("data-scale"))
    assert span * scale <= room, f"opens on {room / scale:.0f} µs of {span:.0f} µs"
    assert kernel(page, "print(len(tm.queue) > 0)").strip() == "True"   # a band to keep clear
    canvas = seq.locator("canvas").element_handle()
    for step in range(4):
        found = drawn_text(page, seq)
        seq.screenshot(path=str(screenshots / f"lab_seq_time_zoom{step}.png"))
        assert len(found["labels"]) >= 5, found["labels"]
        assert found["problems"] == [], (step, found["problems"])
        words = [b for b, t in zip(found["boxes"], found["labels"]) if len(t) > 2]   # not a ✖
        assert page.evaluate(BAND_UNDER_TEXT, [canvas, words]) == 0, step
        seq.locator("button.zoom-in").click()
        seq.locator("button.zoom-in").click()


def test_time_mode_fits_its_lanes_again_when_resized(page):
    seq = show_diagram(page, "mic.widgets.SequenceDiagram(q, mode='time')")
    host, viewport = seq.locator("xpath=.."), seq.locator(".viewport")

    def fits() -> tuple:
        xs = [int(x) for x in host.get_attribute("data-lane-x").split(",")]
        width, canvas = viewport.evaluate("(v) => [v.clientWidth, v.querySelector('canvas').style.width]")
        return xs[-1] + (xs[-1] - xs[-2]) / 2 <= width + 1 and canvas == f"{width}px", xs, width, canvas

    assert fits()[0], fits()
    for _ in range(2):      # the file browser opens (or closes): the notebook's width changes
        before = viewport.evaluate("(v) => v.clientWidth")
        page.evaluate("window.jupyterapp.commands.execute('filebrowser:toggle-main')")
        page.wait_for_function("([v, w]) => v.clientWidth !== w",
                               arg=[viewport.element_handle(), before], timeout=10_000)
        page.wait_for_timeout(300)        # no scroll, no click: the resize alone
        assert fits()[0], fits()


# -- the theme switched while the widgets are shown ----------------------------------

# the median brightness of a grid of the canvas's pixels: its background's
CANVAS_BRIGHTNESS = """(c) => {
    const g = c.getContext('2d'), out = [];
    for (let i = 1; i < 20; i++) for (let j = 1; j < 20; j++) {
        const [r, gr, b] = g.getImageData(Math.floor(c.width * i / 20), Math.floor(c.height * j / 20), 1, 1).data;
        out.push((0.2126 * r + 0.7152 * gr + 0.0722 * b) / 255);
    }
    out.sort((a, b) => a - b);
    return out[out.length >> 1];
}"""


def test_canvases_repaint_when_the_theme_changes(page, screenshots):
    """Switched to dark and back with nothing else happening (no scroll, no
    hover), every canvas follows within a second."""
    shown = [show(page, "mic.widgets.Timeline(q)").locator(".mic-timeline"),
             show_diagram(page, "mic.widgets.SequenceDiagram(q, procs=['Demo.WorkerA', 'Demo.WorkerB'])"),
             show_diagram(page, "mic.widgets.SequenceDiagram(q, mode='time')"),
             show(page, "mic.widgets.ProcessGraph(q)").locator(".mic-graph")]
    canvases = [w.locator("canvas").first for w in shown]
    for w in shown:
        w.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    assert all(c.evaluate(CANVAS_BRIGHTNESS) > 0.8 for c in canvases)
    through_dark_and_back(page, lambda: [c.evaluate(CANVAS_BRIGHTNESS) for c in canvases],
                          lambda: shown[0].screenshot(
                              path=str(screenshots / "lab_dark_timeline_unprompted.png")))


def through_dark_and_back(page, brightness, in_dark=None, seconds: float = 5.0):
    """Switch JupyterLab to dark and back, nothing else happening; after each
    switch, wait (up to ``seconds``) until every ``brightness()`` reading
    follows: under 0.3 in dark, over 0.8 in light."""
    try:
        for theme, dark in (("JupyterLab Dark", True), ("JupyterLab Light", False)):
            page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})",
                          theme)
            page.wait_for_function("(light) => document.body.dataset.jpThemeLight === light",
                                   arg="false" if dark else "true", timeout=20_000)
            deadline = time.monotonic() + seconds
            while True:
                readings = [round(b, 2) for b in brightness()]
                followed = all((b < 0.3) if dark else (b > 0.8) for b in readings)
                if followed or time.monotonic() > deadline:
                    break
                page.wait_for_timeout(100)
            if dark and in_dark:
                in_dark()
            assert followed, (theme, readings)
    finally:
        page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Light'})")


PLOT_BRIGHTNESS = """(plot) => {
    const rgb = getComputedStyle(plot.querySelector('.main-svg')).backgroundColor.match(/[0-9.]+/g);
    return (Number(rgb[0]) + Number(rgb[1]) + Number(rgb[2])) / 765;
}"""


def test_the_dashboard_follows_the_theme(page):
    """The plotly figure is painted in the notebook's theme, and again when it changes."""
    plot = show(page, "q.dashboard()").locator(".js-plotly-plot").first
    plot.wait_for(timeout=60_000)
    page.wait_for_function("(p) => p.querySelector('.main-svg')", arg=plot.element_handle())
    assert plot.evaluate(PLOT_BRIGHTNESS) > 0.8
    through_dark_and_back(page, lambda: [plot.evaluate(PLOT_BRIGHTNESS)])


# -- done-means 2: every label each widget draws, measured ------------------------------

# DOM text: each text node's line boxes; two of them overlapping, or one cut
# sideways by an ancestor that hides what overflows it (overflow: hidden or
# clip) with no ellipsis to say so, is a problem. (What a scroll box hides
# is a scroll away: its part outside the box is left out, not counted cut.)
DOM_TEXT_PROBLEMS = """(root) => {
    const boxes = [], problems = [];
    const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let t = walk.nextNode(); t; t = walk.nextNode()) {
        const el = t.parentElement;
        if (!t.data.trim() || el.closest('style, select, .tip')) continue;
        const range = document.createRange(); range.selectNodeContents(t);
        let rects = [...range.getClientRects()].filter((r) => r.width > 0.5 && r.height > 0.5)
                        .map((r) => [r.left, r.top, r.right, r.bottom]);
        let cut = false;
        for (let a = el; a && a !== root.parentElement; a = a.parentElement) {
            const style = getComputedStyle(a);
            if (style.overflowX === 'visible') continue;
            const box = a.getBoundingClientRect();
            const hides = (style.overflowX === 'hidden' || style.overflowX === 'clip')
                          && style.textOverflow !== 'ellipsis';
            // what a scroll box hides above or below its fold is not shown: keep the visible part
            rects = rects.filter((r) => r[3] > box.top + 1 && r[1] < box.bottom - 1)
                         .map((r) => [r[0], Math.max(r[1], box.top), r[2], Math.min(r[3], box.bottom)]);
            if (hides && rects.some((r) => r[2] > box.right + 1 || r[0] < box.left - 1)) cut = true;
            rects = rects.filter((r) => r[2] > box.left + 1 && r[0] < box.right - 1)
                         .map((r) => [Math.max(r[0], box.left), r[1], Math.min(r[2], box.right), r[3]]);
        }
        if (!rects.length) continue;
        if (cut) problems.push(`cut sideways: ${t.data.trim().slice(0, 40)}`);
        for (const r of rects) boxes.push([...r, t.data.trim().slice(0, 40), t]);
    }
    boxes.sort((a, b) => a[1] - b[1]);
    for (let i = 0; i < boxes.length; i++)
        for (let j = i + 1; j < boxes.length && boxes[j][1] < boxes[i][3]; j++) {
            const [a, b] = [boxes[i], boxes[j]];
            if (a[5] !== b[5] && Math.min(a[2], b[2]) - Math.max(a[0], b[0]) > 1
                && Math.min(a[3], b[3]) - Math.max(a[1], b[1]) > 1)
                problems.push(`overlap: ${a[4]} | ${b[4]}`);
        }
    return { count: boxes.length, problems: problems.slice(0, 12) };
}"""


@pytest.mark.parametrize("recording", ["q", "s"], ids=["quickstart", "busy"])
def test_no_widget_draws_a_label_over_another_or_cuts_one(page, screenshots, recording):
    """The quickstart's recording and the busy one (~5k messages): each canvas
    widget's labels (the diagram in both modes, at its first view and fitted),
    and the DOM widgets' text."""
    found = {}
    for mode in ("compact", "time"):
        seq = show_diagram(page, f"mic.widgets.SequenceDiagram({recording}, mode={mode!r})")
        found[f"sequence {mode}"] = drawn_text(page, seq)
        seq.screenshot(path=str(screenshots / f"lab_labels_{recording}_seq_{mode}.png"))
        seq.locator("button.fit").click()
        found[f"sequence {mode}, fitted"] = drawn_text(page, seq)
        seq.screenshot(path=str(screenshots / f"lab_labels_{recording}_seq_{mode}_fit.png"))
    for name, cls in (("Timeline", ".mic-timeline"), ("ProcessGraph", ".mic-graph")):
        widget = show(page, f"mic.widgets.{name}({recording})").locator(cls)
        widget.wait_for(timeout=30_000)
        widget.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        found[name] = drawn_text(page, widget)
        widget.screenshot(path=str(screenshots / f"lab_labels_{recording}_{name}.png"))
    crash = f"{recording}.findings().query('kind == \"crash\"').iloc[0]"
    for name, cls, code in (
            ("TimeTravel", ".mic-tt", f"TimeTravel({recording}, cursor=len({recording}.store) // 2)"),
            ("SupervisionTree", ".mic-tree", "SupervisionTree(s)"),         # the live node's
            ("SourceView", ".mic-source", f"SourceView(s, {crash})")):
        widget = show(page, f"mic.widgets.{code}").locator(cls)
        widget.wait_for(timeout=30_000)
        widget.scroll_into_view_if_needed()
        found[name] = widget.evaluate(DOM_TEXT_PROBLEMS)
    counts = {k: len(v["labels"]) if "labels" in v else v["count"] for k, v in found.items()}
    assert all(n >= 3 for n in counts.values()), json.dumps(counts)      # something was measured
    problems = {k: v["problems"] for k, v in found.items() if v["problems"]}
    assert problems == {}, json.dumps(problems, indent=1, ensure_ascii=False)


def test_narrow_canvases_print_no_label_over_another(page, screenshots):
    """The same measure at 400 and 800 px and in a split view: lanes and axes squeezed,
    labels cut to their room or left to the tooltip, never over each other."""
    widgets = {"compact": show_diagram(page, "mic.widgets.SequenceDiagram(q)"),
               "time": show_diagram(page, "mic.widgets.SequenceDiagram(q, mode='time')"),
               "timeline": show(page, "mic.widgets.Timeline(q)").locator(".mic-timeline"),
               "graph": show(page, "mic.widgets.ProcessGraph(q)").locator(".mic-graph")}
    try:
        for where in ("400", "800", "split"):
            if where != "split":
                set_width(page, int(where))
            else:
                set_width(page, 1400)
                page.evaluate("""() => window.jupyterapp.commands.execute('docmanager:open',
                                 {path: 'notes.txt', options: {mode: 'split-right'}})""")
                page.wait_for_timeout(800)
            problems = {}
            for name, widget in widgets.items():
                widget.scroll_into_view_if_needed()
                found = drawn_text(page, widget)
                widget.screenshot(path=str(screenshots / f"lab_labels_{where}_{name}.png"))
                assert len(found["labels"]) >= 3, (where, name, found["labels"])
                if found["problems"]:
                    problems[name] = found["problems"]
            assert problems == {}, (where, json.dumps(problems, indent=1, ensure_ascii=False))
    finally:
        close_split(page)
        set_width(page, 1400)
