"""End to end in a real JupyterLab: run the quickstart, use every widget, check Python sees it.

Few and meaningful: one JupyterLab for the module, one notebook run, then
each interaction checked against the kernel's own state.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
from browsing import jupyterlab, kernel, page_error

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "notebooks" / "01_quickstart.ipynb"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    work = tmp_path_factory.mktemp("lab")
    shutil.copy(QUICKSTART, work / QUICKSTART.name)
    with jupyterlab(work, MICROSCOPE_DEMO_APP=str(ROOT / "examples" / "apps" / "demo")) as server:
        yield server


@pytest.fixture(scope="module")
def notebook(browser, lab):
    """The quickstart, opened and run to the end in JupyterLab."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.extend([t for t in [page_error(e)] if t]))
    page.goto(f"{lab['url']}/lab/tree/{QUICKSTART.name}?token={lab['token']}")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                           timeout=60_000)
    page.evaluate("""async () => {
        const nb = window.jupyterapp.shell.currentWidget;
        await nb.sessionContext.ready;
        await window.jupyterapp.commands.execute('notebook:run-all-cells');
    }""")
    page.wait_for_function("""() => {
        const nb = window.jupyterapp.shell.currentWidget;
        return nb.sessionContext.session.kernel.status === 'idle'
            && [...document.querySelectorAll('.jp-InputArea-prompt')].every(p => !p.textContent.includes('*'));
    }""", timeout=180_000)
    page.errors = errors
    yield page
    context.close()


def kernel_cursor_once_moved(page, cursor: int, timeout: float = 5.0) -> int:
    """The TimeTravel widget's cursor in the kernel, once it is no longer ``cursor``."""
    deadline = time.monotonic() + timeout
    while True:
        now = int(kernel(page, "print(w[-1].cursor)").strip())
        if now != cursor or time.monotonic() > deadline:
            return now
        page.wait_for_timeout(100)


def test_quickstart_runs_and_every_widget_renders(notebook, screenshots):
    page = notebook
    errors = [e for e in page.errors if "favicon" not in e]
    assert not errors, "\n".join(errors)
    assert kernel(page, "print(len(s.events) > 100)").strip() == "True"
    for selector, name in [(".mic-seq", "sequence_diagram"), (".mic-tt", "time_travel"),
                           (".mic-tree", "supervision_tree"), (".mic-timeline", "timeline"),
                           (".mic-graph", "process_graph"), (".mic-source", "source_view")]:
        widget = page.locator(selector).first
        widget.scroll_into_view_if_needed()
        assert widget.is_visible(), f"{name} did not render"
        widget.screenshot(path=str(screenshots / f"lab_{name}.png"))
    assert page.locator(".mic-seq").count() == 2   # %%trace's diagram and the filtered one
    plot = page.locator(".js-plotly-plot").first   # s.dashboard(): drawn, with its traces
    plot.scroll_into_view_if_needed()
    assert plot.is_visible() and plot.locator(".scatterlayer .trace").count() >= 2
    plot.screenshot(path=str(screenshots / "lab_dashboard.png"))
    assert page.locator(".mic-dashboard-still").count() == 0   # drawn: the still picture went
    assert page.locator(".mic-tree .row").count() > 10


def test_clicking_a_process_selects_it_in_python(notebook):
    page = notebook
    tree = page.locator(".mic-tree").first
    tree.scroll_into_view_if_needed()
    tree.locator("input.search").fill("Demo.WorkerA")     # typed into JupyterLab, not eaten by it
    assert kernel(page, "print(tree.query)").strip() == "Demo.WorkerA"
    row = tree.locator(".row", has_text="Demo.WorkerA").last
    row.scroll_into_view_if_needed()
    pid = row.get_attribute("data-pid")
    row.click()
    page.wait_for_timeout(300)
    assert kernel(page, "print(tree.selected)").strip() == pid
    assert kernel(page, "print(tree.selected_process['name'])").strip() == "Demo.WorkerA"


def test_clicking_an_arrow_selects_the_message_in_python(notebook):
    page = notebook
    viewport = page.locator(".mic-seq .viewport").nth(1)   # the filtered WorkerA -> WorkerB one
    viewport.scroll_into_view_if_needed()
    box = viewport.bounding_box()
    viewport.click(position={"x": 150, "y": 34 + 2 * 22 + 11})
    page.wait_for_timeout(300)
    out = kernel(page, "print(seq.selected_message['text'], seq.selected_message['status'])")
    assert out.strip() == "{:update, 3} delivered", out
    assert box["height"] > 100


def test_moving_the_time_travel_slider_changes_the_snapshot(notebook):
    page = notebook
    widget = page.locator(".mic-tt").first
    widget.scroll_into_view_if_needed()
    # The widget class, not analysis.History (which also has a cursor).
    # (The open one: s.report at the end made and closed another.)
    before_cursor = int(kernel(page, "w = [x for x in __import__('gc').get_objects() "
                                     "if isinstance(x, mic.widgets.TimeTravel) "
                                     "and x.comm is not None]\n"
                                     "assert len(w) == 1, w\n"
                                     "print(w[-1].cursor)").strip())
    before_text = widget.locator(".event").inner_text()
    slider = widget.locator("input.slider")
    slider.focus()
    page.keyboard.press("ArrowRight")      # the range input moves and syncs the cursor
    after_cursor = kernel_cursor_once_moved(page, before_cursor)
    assert after_cursor == before_cursor + 1
    page.wait_for_function("(t) => document.querySelector('.mic-tt .event').innerText !== t",
                           arg=before_text, timeout=5000)
    widget.locator("button.next").click()
    assert kernel_cursor_once_moved(page, after_cursor) == after_cursor + 1


def run_new_cell(page, code: str) -> None:
    """Add a code cell at the end of the notebook and run it, as a person would."""
    page.evaluate("""async (code) => {
        const nb = window.jupyterapp.shell.currentWidget;
        const n = nb.content.model.cells.length;
        nb.content.model.sharedModel.insertCell(n, { cell_type: 'code', source: code });
        nb.content.activeCellIndex = n;
        await window.jupyterapp.commands.execute('notebook:run-cell');
    }""", code)


def test_an_assistants_trace_is_approved_by_clicking_in_the_notebook(notebook):
    page = notebook
    # an assistant on a client that cannot ask its human proposes a trace: it waits
    out = kernel(page, """
from mcp.client import Client
from microscope_jupyter.assistant import build_server
server = s.serve_mcp()
async def propose():
    async with Client(build_server(server.assistant)) as c:
        return (await c.call_tool("propose_trace", {"reason": "watch WorkerB",
                "processes": ["Demo.WorkerB"], "duration_s": 1.0})).content[0].text
print(await propose())
""")
    assert "proposal 1: pending." in out, out
    run_new_cell(page, "%beam_mcp status")
    panel = page.locator(".microscope-approvals").last
    panel.wait_for(timeout=20_000)
    shown = panel.inner_text()   # everything that will run, before anyone approves
    assert "reason: watch WorkerB" in shown and "processes: Demo.WorkerB" in shown, shown
    assert "duration: 1 s" in shown, shown
    events_before = int(kernel(page, "print(len(s.store))").strip())
    panel.get_by_role("button", name="Approve").click()
    page.wait_for_function("() => [...document.querySelectorAll('.microscope-approvals')]"
                           ".pop().innerText.includes('started')", timeout=20_000)
    assert kernel(page, "p = server.assistant.proposals[1]; print(p.status, p.decided_by)"
                  ).strip() == "started notebook"
    # the assistant sees what its approved trace recorded
    status = kernel(page, """
import time
while server.assistant.recording.state == "running":
    time.sleep(0.05)
async def status():
    async with Client(build_server(server.assistant)) as c:
        return (await c.call_tool("trace_status", {})).content[0].text
print(await status())
server.stop()
""")
    assert "proposal 1: started by notebook" in status, status
    assert int(kernel(page, "print(len(s.store))").strip()) > events_before


def test_an_investigations_trace_is_approved_by_clicking_in_the_notebook(notebook):
    """s.investigate shows the trace it wants with Approve / Deny / Stop; a click
    runs it in the kernel and the view shows what it showed."""
    page = notebook
    events_before = int(kernel(page, "print(len(s.store))").strip())
    run_new_cell(page, 'inv = s.investigate("Why is the total count in the table too low?")\n'
                       'inv')
    view = page.locator(".microscope-investigation-view").last
    view.wait_for(timeout=30_000)
    shown = view.inner_text()        # everything that will run, before anyone approves
    assert "Proposed trace, waiting for approval" in shown, shown
    assert "ets.lookup/2" in shown and "events/s" in shown and "limits:" in shown, shown
    assert kernel(page, "print(inv.status, len(s.store))").split() == ["waiting",
                                                                       str(events_before)]
    view.get_by_role("button", name="Approve").click()
    page.wait_for_function("() => [...document.querySelectorAll("
                           "'.microscope-investigation-view')].pop().innerText"
                           ".includes('approved by notebook')", timeout=60_000)
    assert kernel(page, "print(inv.path['decision'].iloc[0])").strip() == "approved by notebook"
    assert int(kernel(page, "print(len(s.store))").strip()) > events_before


def test_tooltip_sits_at_the_pointer_in_jupyterlab(notebook):
    """JupyterLab's panels have contain: strict, which makes position: fixed
    relative to the panel: the tooltip must still appear at the pointer."""
    page = notebook
    viewport = page.locator(".mic-seq .viewport").nth(1)
    root = page.locator(".mic-seq").nth(1)
    tip = root.locator(".tip")
    xs = [int(x) for x in root.locator("xpath=..").get_attribute("data-lane-x").split(",")]
    for _ in range(5):    # outputs above may still be settling: measure where the widget is now
        viewport.scroll_into_view_if_needed()
        box = viewport.bounding_box()
        x, y = box["x"] + (xs[0] + xs[1]) / 2, box["y"] + 34 + 11
        page.mouse.move(x, y)
        if tip.is_visible():
            break
        page.wait_for_timeout(300)
    tip.wait_for(state="visible", timeout=5000)
    tb = tip.bounding_box()
    distance = ((tb["x"] - x) ** 2 + (tb["y"] - y) ** 2) ** 0.5
    assert distance < 40, f"the tooltip is {distance:.0f} px from the pointer"
    assert "Demo.WorkerA → Demo.WorkerB" in tip.inner_text()


def _luminance(css: str) -> float:
    import re

    r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_dark_theme_leaves_no_light_chrome(notebook, screenshots):
    page = notebook
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                  "{theme: 'JupyterLab Dark'})")
    try:
        page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=20_000)
        page.wait_for_timeout(500)
        for selector in [".mic-seq", ".mic-tt", ".mic-tree", ".mic-timeline"]:
            widget = page.locator(selector).first
            styles = widget.evaluate("""(el) => {
                const bar = el.querySelector('.bar'), s = getComputedStyle(el), b = getComputedStyle(bar);
                return [s.backgroundColor, s.color, b.backgroundColor]; }""")
            background, text, bar = styles
            assert _luminance(background) < 0.35 and _luminance(bar) < 0.35, (selector, styles)
            assert _luminance(text) > 0.6, (selector, styles)
        # the canvas painters read the theme too: the diagram's header is dark
        seq = page.locator(".mic-seq").nth(1)
        seq.scroll_into_view_if_needed()
        seq.locator("button.fit").click()
        pixel = seq.evaluate("""(el) => { const c = el.querySelector('canvas');
            return [...c.getContext('2d').getImageData(5, 5, 1, 1).data].slice(0, 3); }""")
        assert sum(pixel) / 3 < 90, pixel
        seq.screenshot(path=str(screenshots / "lab_dark_sequence_diagram.png"))
        page.locator(".mic-timeline").first.screenshot(path=str(screenshots / "lab_dark_timeline.png"))
    finally:
        page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Light'})")
        page.wait_for_function("document.body.dataset.jpThemeLight === 'true'", timeout=20_000)


def test_an_untrusted_notebook_shows_legible_fallbacks(browser, lab, screenshots):
    """Reopened untrusted, a notebook's widgets are shown by their static HTML
    through JupyterLab's sanitiser: still pictures, with legend and crashes."""
    import nbformat
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_agent import A, B, FakeAgent
    from microscope_jupyter.saved import OfflineSession
    from microscope_jupyter.beam.terms import Atom
    from microscope_jupyter.store.event_store import EventStore
    from microscope_jupyter.widgets import SequenceDiagram, Timeline

    store = EventStore()
    agent = FakeAgent(store, names=[(B, Atom("Elixir.Demo.WorkerB")),
                                    (A, Atom("Elixir.Demo.WorkerA"))])
    for n in range(3):
        agent.event("send", A, B, payload=(Atom("update"), n))
        agent.event("receive", B, payload=(Atom("update"), n))
    agent.event("exit", B, payload=(Atom("badmatch"), 3))
    agent.event("send_to_dead", A, B, payload=(Atom("update"), 3))
    agent.flush()
    recorded = OfflineSession(store, {"node": "demo@host"}, None)
    cells = []
    for widget in (SequenceDiagram(recorded), Timeline(recorded)):
        data, metadata = widget._repr_mimebundle_()
        cell = nbformat.v4.new_code_cell("w")
        cell.outputs = [nbformat.v4.new_output("display_data", data=data, metadata=metadata)]
        cells.append(cell)
    board = nbformat.v4.new_code_cell("s.dashboard()")
    board.outputs = [nbformat.v4.new_output("display_data", data={
        "text/html": recorded.dashboard()._repr_html_(), "text/plain": "<Dashboard>"})]
    cells.append(board)
    path = lab["dir"] / "untrusted.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)   # never signed: untrusted

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(f"{lab['url']}/lab/tree/untrusted.ipynb?token={lab['token']}")
        panel = page.locator(".jp-NotebookPanel", has_text="Sequence diagram (4 messages")
        outputs = panel.locator(".jp-OutputArea-output")
        outputs.nth(1).wait_for(timeout=60_000)
        text = outputs.nth(0).inner_text()
        assert "Sequence diagram (4 messages, 2 processes)" in text
        assert all(k in text for k in ("call", "reply", "cast", "info", "lost"))   # the legend
        assert "Demo.WorkerB ✖ crashed" in text and "{:badmatch, 3}" in text
        assert "{:update, 1}" in text and "<svg" not in text
        timeline = outputs.nth(1)
        assert "Timeline (2 processes" in timeline.inner_text()
        bars = timeline.evaluate("(el) => [...el.querySelectorAll('td div div')]"
                                 ".map((d) => d.getBoundingClientRect().width)")
        assert bars and max(bars) > 50, bars          # the lifetime bars kept their widths
        crash = timeline.locator("text=✖").last
        assert "rgb(217, 48, 37)" in crash.evaluate("(el) => getComputedStyle(el).color")
        # the dashboard's script never runs here: its still picture stands, not a blank hole
        still = outputs.nth(2).locator("img.mic-dashboard-still")
        still.wait_for(timeout=20_000)
        size = still.evaluate("(el) => [el.naturalWidth, el.getBoundingClientRect().height]")
        assert size[0] > 300 and size[1] > 200, size
        page.screenshot(path=str(screenshots / "lab_untrusted_fallbacks.png"))
    finally:
        context.close()


def test_playing_the_process_graph_moves_the_linked_widgets(notebook):
    page = notebook
    graph = page.locator(".mic-graph").first
    graph.scroll_into_view_if_needed()
    start = int(kernel(page, "print(graph.cursor)").strip())
    graph.locator("select.speed").select_option("0.1")
    graph.locator("button.play").click()
    deadline = time.monotonic() + 20
    moved = start
    while moved == start and time.monotonic() < deadline:
        page.wait_for_timeout(200)
        moved = int(kernel(page, "print(graph.cursor)").strip())
    assert moved != start
    graph.locator("button.play").click()          # pause
    # linked through the sequence diagram: it and the time travel slider follow
    # (read in one go: a playing graph moves the cursor between two reads)
    cursors = kernel(page, "print(graph.cursor, seq.cursor)").split()
    assert len(set(cursors)) == 1 and int(cursors[0]) != start, cursors
    graph.locator("select.findings").select_option(index=1)
    page.wait_for_function("() => document.querySelector('.mic-graph .path')?.innerText.includes('causal chain')",
                           timeout=10_000)
    assert "hops" in graph.locator(".path").inner_text()


def test_source_view_shows_the_crash_line(notebook):
    page = notebook
    view = page.locator(".mic-source").first
    view.scroll_into_view_if_needed()
    target = view.locator(".ln.target")
    assert target.is_visible() and "def handle_info(" in target.inner_text()
    assert "×" in target.inner_text()                 # how often it ran, on its first line


def test_zoom_keeps_headers_over_lifelines_and_resize_redraws(notebook):
    page = notebook
    seq = page.locator(".mic-seq").nth(1)
    seq.scroll_into_view_if_needed()
    host = seq.locator("xpath=..")
    canvas = seq.locator("canvas")
    for button in ["zoom-out", "zoom-out", "zoom-in"]:
        seq.locator(f"button.{button}").click()
        xs = [int(x) for x in host.get_attribute("data-lane-x").split(",")]
        # each lifeline is drawn at its header's x: the lifeline colour there, not beside it
        colours = canvas.evaluate("""(c, xs) => xs.map((x) => {
            const d = window.devicePixelRatio || 1, y = c.height / d - 3;
            const at = (px) => [...c.getContext('2d').getImageData(px * d, y * d, 1, 1).data].slice(0, 3).join();
            return [at(x), at(x + 6)]; })""", xs)
        assert all(on != beside for on, beside in colours), colours
    # the file browser opening narrows the notebook: the canvas follows
    before = canvas.evaluate("(c) => c.style.width")
    page.evaluate("window.jupyterapp.commands.execute('filebrowser:toggle-main')")
    page.wait_for_function("(w) => document.querySelectorAll('.mic-seq canvas')[1].style.width !== w",
                           arg=before, timeout=10_000)
    page.evaluate("window.jupyterapp.commands.execute('filebrowser:toggle-main')")


def test_time_mode_ends_an_arrow_where_its_message_was_handled(notebook):
    page = notebook
    run_new_cell(page, "seq_time = mic.widgets.SequenceDiagram(s, procs=['Demo.WorkerA', 'Demo.Stats'], "
                       "mode='time')\nseq_time")
    page.locator(".mic-seq[data-mode], .mic-seq").last.wait_for(timeout=20_000)
    page.wait_for_function("() => [...document.querySelectorAll('[data-mode]')].some(e => e.dataset.mode === 'time')",
                           timeout=20_000)
    host = page.locator("[data-mode='time']").last
    host.scroll_into_view_if_needed()
    # the message that waited longest, from the kernel's own table
    picked = kernel(page, """m = seq_time.msgs
k = max((i for i in range(len(m['seq'])) if m['end_us'][i] is not None and m['to'][i] >= 0),
        key=lambda i: m['end_us'][i] - m['send_us'][i])
print(k, m['end_us'][k], m['to'][k], m['text'][k])""").split(maxsplit=3)
    k, end_us, to, text = int(picked[0]), float(picked[1]), int(picked[2]), picked[3].strip()
    # time mode opens on the whole recording; zoomed in (reset: a row for the
    # median gap between sends), the arrows stand apart
    host.locator("button.reset").click()
    scale = float(host.get_attribute("data-scale"))
    lane_x = [int(x) for x in host.get_attribute("data-lane-x").split(",")]
    viewport = host.locator(".viewport")
    y = 34 + 12 + end_us * scale
    viewport.evaluate("(v, y) => { v.scrollTop = Math.max(0, y - 200); }", y)
    page.wait_for_timeout(100)
    top = viewport.evaluate("(v) => v.scrollTop")
    box = viewport.bounding_box()
    page.mouse.move(box["x"] + lane_x[to] - 5, box["y"] + y - top - 1)
    tip = host.locator(".tip")
    tip.wait_for(state="visible", timeout=5000)
    assert text[:30] in tip.inner_text(), (text, tip.inner_text())


def test_the_process_graph_draws_lost_messages_and_dead_processes_as_such(notebook, screenshots):
    """The quickstart's graph: WorkerA's updates lost to the crashed WorkerB are
    a red dashed edge of their own, counted, with a tooltip that has every
    figure it names; the crashed pid wears a red cross; the crash finding's
    chain ends with the message that crashed it; play shows messages moving;
    and every widget's key says 'crashed' in the same words."""
    import json
    import re

    page = notebook
    graph = page.locator(".mic-graph").first
    holder = graph.locator("xpath=..")
    graph.scroll_into_view_if_needed()
    lost = int(kernel(page, "print(max(e['lost'] for e in graph.edges))").strip())
    assert lost > 0
    strokes = [d for d in json.loads(holder.get_attribute("data-edges")) if d["kind"] == "lost"]
    assert [d["count"] for d in strokes] == [lost], strokes
    canvas = graph.locator("canvas")

    def red_near(x: float, y: float) -> bool:
        return page.evaluate("""([c, x, y]) => {
            const d = window.devicePixelRatio || 1, r = 5 * d;
            const px = c.getContext('2d').getImageData(x * d - r, y * d - r, 2 * r, 2 * r).data;
            for (let i = 0; i < px.length; i += 4)
                if (px[i] > 170 && px[i + 1] < 90 && px[i + 2] < 90) return true;
            return false; }""", [canvas.element_handle(), x, y])

    graph.screenshot(path=str(screenshots / "lab_process_graph_honest.png"))
    assert red_near(strokes[0]["x"], strokes[0]["y"])
    crashed = json.loads(kernel(page, "import json; print(json.dumps("
                                      "[i for i, n in enumerate(graph.nodes) if n['crashed']]))"))
    at = json.loads(holder.get_attribute("data-nodes"))
    assert crashed and all(red_near(*at[i]) for i in crashed)
    alive = [i for i in range(len(at)) if i not in crashed][0]
    assert not red_near(*at[alive])
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + strokes[0]["x"], box["y"] + strokes[0]["y"])
    tip = graph.locator(".tip")
    tip.wait_for(state="visible", timeout=5000)
    text = tip.inner_text()
    assert f"✖ {lost} lost" in text and "delivered" in text, text
    assert not re.search(r"wait\s+·|longest\s*(\n|$)", text), text     # no figure left blank
    page.mouse.move(box["x"] + 2, box["y"] + 2)

    crash = graph.locator("select.findings option", has_text="crashed: :function_clause").first
    graph.locator("select.findings").select_option(value=crash.get_attribute("value"))
    page.wait_for_function("() => document.querySelector('.mic-graph .path')?.innerText"
                           ".includes('checkpoint')", timeout=10_000)
    hops = graph.locator(".path div").all_inner_texts()
    assert "{:update, 10, :checkpoint}" in hops[-1], hops

    graph.locator("select.speed").select_option("1")
    graph.locator("button.play").click()
    seen = 0
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        page.wait_for_timeout(50)
        seen = int(holder.get_attribute("data-in-flight") or 0)
    if kernel(page, "print(graph.playing)").strip() == "True":
        graph.locator("button.play").click()
    assert seen > 0, "play showed no message moving"

    words = {sel: page.locator(f"{sel} [data-legend=crashed]").first.text_content()
             for sel in (".mic-graph", ".mic-seq", ".mic-timeline", ".mic-tt")}
    assert len(set(words.values())) == 1, words
