"""Legible at every width and theme, in a real JupyterLab: the widgets on the
quickstart's recording (its own %%trace cell, run against the demo app) and
on a busy recording of ~5k messages, at 400, 800 and 1400 px, in a split
view, and with the theme switched while they are shown.

One JupyterLab and one notebook for the module; each test adds the cells it
needs and looks at what they draw."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from browsing import jupyterlab, kernel

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "notebooks" / "01_quickstart.ipynb"


def quickstart_trace_cell() -> str:
    """The quickstart's own %%trace cell, so this recording is the quickstart's."""
    cells = nbformat.read(QUICKSTART, as_version=4).cells
    return next(c.source for c in cells if c.source.startswith("%%trace"))


SETUP = ("%load_ext microscope\nimport microscope_jupyter as mic\n"
         "s = %beam_attach --demo")
# The busy recording: WorkerA ticking every millisecond (an update to the pid
# WorkerB had, a call to Stats and its reply, the timer's own message) for ~2.6 s.
BUSY = ("%%trace --for 300ms\nDemo.start_updates(1)\nProcess.sleep(2600)\nDemo.stop_updates()")
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
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
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
    page.evaluate("""async (code) => {
        const nb = window.jupyterapp.shell.currentWidget;
        const n = nb.content.model.cells.length;
        nb.content.model.sharedModel.insertCell(n, { cell_type: 'code', source: code });
        nb.content.activeCellIndex = n;
        await window.jupyterapp.commands.execute('notebook:run-cell');
    }""", code)
    out = page.locator(".jp-Notebook .jp-Cell").last.locator(".jp-OutputArea-output").last
    out.wait_for(timeout=60_000)
    return out


def test_the_busy_recording_is_busy(page):
    quick = int(kernel(page, "print(len(q.messages()))").strip())
    busy = int(kernel(page, "print(len(s.messages()) - len(q.messages()))").strip())
    assert quick > 50 and 4000 <= busy <= 9000, (quick, busy)


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
