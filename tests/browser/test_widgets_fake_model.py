"""Each widget's ESM against a fake model on a static page: fast, no Jupyter.

The end-to-end tests in test_jupyterlab.py prove the same bundles in a real
JupyterLab; these pin the behaviour of each front end quickly.
"""

from __future__ import annotations

import http.server
import threading
from functools import partial
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "microscope_jupyter" / "widgets" / "static"


@pytest.fixture(scope="module")
def server():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = partial(Quiet, directory=str(ROOT))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def mount(page, server, name, state):
    page.goto(f"{server}/tests/browser/fake_model.html")
    page.evaluate("([url, state]) => window.mount(url, state)",
                  [f"{server}/microscope_jupyter/widgets/static/{name}.js", state])


TREE = {"nodes": [
    {"pid": "<0.1.0>", "name": "Demo.Supervisor", "parent": None, "kind": "supervisor",
     "status": "waiting", "message_queue_len": 0, "memory": 9000, "initial_call": ":supervisor.init/1"},
    {"pid": "<0.2.0>", "name": "Demo.WorkerA", "parent": "<0.1.0>", "kind": "worker",
     "status": "waiting", "message_queue_len": 0, "memory": 2000, "initial_call": "Demo.WorkerA.init/1"},
    {"pid": "<0.3.0>", "name": "Demo.WorkerB", "parent": "<0.1.0>", "kind": "worker",
     "status": "running", "message_queue_len": 12, "memory": 4000, "initial_call": "Demo.WorkerB.init/1"},
], "selected": "", "query": "", "color_by": "status"}


def test_tree_click_search_collapse(page, server, screenshots):
    mount(page, server, "supervision_tree", TREE)
    assert page.locator(".row[data-pid]").count() == 3
    page.click(".row[data-pid='<0.3.0>']")
    assert page.evaluate("model.get('selected')") == "<0.3.0>"
    assert page.evaluate("model.saved.length") == 1
    page.fill("input.search", "workera")
    assert page.locator(".row[data-pid]").count() == 2          # the match and its ancestor
    assert page.evaluate("model.get('query')") == "workera"
    page.fill("input.search", "")
    page.click(".row[data-pid='<0.1.0>'] .caret")
    assert page.locator(".row[data-pid]").count() == 1
    assert page.get_attribute("input.search", "data-lm-suppress-shortcuts") == "true"
    page.screenshot(path=str(screenshots / "fake_supervision_tree.png"))


def test_tree_groups_by_application_sorts_and_shows_details(page, server, screenshots):
    node = {"kind": "worker", "status": "waiting", "memory": 1000, "reductions": 10,
            "message_queue_len": 0, "initial_call": "", "restarts": 0}
    nodes = [{**node, "pid": "<0.40.0>", "name": "kernel_sup", "parent": None, "kind": "supervisor",
              "application": "kernel"},
             {**node, "pid": "<0.41.0>", "name": "code_server", "parent": "<0.40.0>",
              "application": "kernel", "message_queue_len": 2},
             {**node, "pid": "<0.1.0>", "name": "Demo.Supervisor", "parent": None, "kind": "supervisor",
              "application": "demo"},
             {**node, "pid": "<0.2.0>", "name": "Demo.WorkerA", "parent": "<0.1.0>", "application": "demo",
              "memory": 9000, "reductions": 5},
             {**node, "pid": "<0.3.0>", "name": "Demo.WorkerB", "parent": "<0.1.0>", "application": "demo",
              "message_queue_len": 412, "reductions": 90000, "restarts": 2,
              "findings": [{"severity": "error", "text": "Demo.WorkerB crashed", "seq": 40}]}]
    state = {"nodes": nodes, "selected": "", "query": "", "color_by": "mailbox", "sort_by": "tree",
             "user_apps": ["demo"], "as_of": "12:00:01", "live": False, "can_trace": True, "details": {}}
    mount(page, server, "supervision_tree", state)
    groups = page.locator(".row.group").all_inner_texts()
    assert [g.strip("▾▸ \n") for g in groups] == ["demo", "kernel (OTP)"]   # yours first
    order = lambda: page.locator(".row[data-pid]").evaluate_all("(els) => els.map((e) => e.dataset.pid)")  # noqa: E731
    assert order() == ["<0.1.0>", "<0.2.0>", "<0.3.0>", "<0.40.0>", "<0.41.0>"]
    page.click(".head [data-sort='mailbox']")
    assert page.evaluate("model.get('sort_by')") == "mailbox"
    assert order()[:3] == ["<0.1.0>", "<0.3.0>", "<0.2.0>"]   # the backlogged worker first among its siblings
    page.click(".head [data-sort='memory']")
    assert order()[:3] == ["<0.1.0>", "<0.2.0>", "<0.3.0>"]
    page.click(".head [data-sort='memory']")                  # again: back to tree order
    assert page.evaluate("model.get('sort_by')") == "tree"
    assert "↻ 2" in page.locator(".row[data-pid='<0.3.0>']").inner_text()
    badge = page.locator(".row[data-pid='<0.3.0>'] .finding.error")
    assert "⚠1" in badge.inner_text() and badge.get_attribute("title") == "error: Demo.WorkerB crashed"
    assert "412 mailbox" in page.locator(".legend").inner_text()       # the colour scale's top
    assert "as of 12:00:01" in page.locator(".as-of").inner_text()
    page.check("input.live")
    assert page.evaluate("model.get('live')") is True
    # a click selects; Python's details show with a button that asks to trace it
    page.click(".row[data-pid='<0.3.0>']")
    page.evaluate("""model.set('details', {pid: '<0.3.0>', state: '%{count: 7}', links: ['Demo.Supervisor'],
                     monitors: [], monitored_by: ['Demo.WorkerA'], counters: 'mailbox 412'})""")
    text = page.locator(".details").inner_text()
    assert "%{count: 7}" in text and "links: Demo.Supervisor" in text and "monitored by: Demo.WorkerA" in text
    assert "null" not in text
    assert "error: Demo.WorkerB crashed (#40)" in text       # its findings, with their evidence
    page.click("button.trace")
    assert page.evaluate("model.sent") == [{"event": "trace", "pid": "<0.3.0>", "seconds": 5}]
    page.screenshot(path=str(screenshots / "fake_supervision_tree_observer.png"))


def test_tree_stays_fluid_with_5000_processes(page, server):
    nodes = [{"pid": "<0.0.0>", "name": "root", "parent": None, "kind": "supervisor",
              "status": "waiting", "message_queue_len": 0, "memory": 1}]
    nodes += [{"pid": f"<0.{i}.0>", "name": f"w{i}", "parent": "<0.0.0>", "kind": "worker",
               "status": "waiting", "message_queue_len": i % 7, "memory": i} for i in range(1, 5000)]
    mount(page, server, "supervision_tree", {**TREE, "nodes": nodes})
    assert page.locator(".count").inner_text() == "5000 of 5000 processes"
    assert page.locator(".row").count() < 60            # virtualised: only rows in view exist
    assert page.evaluate("window.renderMs") < 1500


def seq_state(n=6):
    return {
        "lanes": [{"id": "<0.2.0>", "label": "Demo.WorkerA"}, {"id": "<0.3.0>", "label": "Demo.WorkerB"}],
        "msgs": {"from": [0] * n, "to": [1] * n, "seq": list(range(10, 10 + n)),
                 "recv_seq": [None] * n, "kind": ["info"] * n,
                 "status": ["delivered"] * (n - 1) + ["lost"], "latency_us": [50.0] * n,
                 "wait_us": [None] * n, "send_us": [100.0 * i for i in range(n)],
                 "end_us": [100.0 * i + 50 for i in range(n)],
                 "text": [f"{{:update, {i}}}" for i in range(n)]},
        "crashes": [{"lane": 1, "row": n - 2, "t_us": 100.0 * (n - 1), "text": "function_clause",
                     "abnormal": True}],
        "selected": -1, "cursor": -1, "filter": "", "hidden": [], "row_filter": None,
        "mode": "compact", "activations": [], "queue": [], "marks": [],
    }


HEADER, ROW, PAD = 34, 22, 12     # sequence_diagram.js: header, default row height, time padding


def lane_x(page):
    return [int(x) for x in page.get_attribute("#root", "data-lane-x").split(",")]


def canvas_pixel(page, x, y):
    """The canvas colour at viewport point (x, y), as [r, g, b]."""
    return page.evaluate("""([x, y]) => {
        const c = document.querySelector('.mic-seq canvas'), d = window.devicePixelRatio || 1;
        return [...c.getContext('2d').getImageData(Math.round(x * d), Math.round(y * d), 1, 1).data].slice(0, 3);
    }""", [x, y])


def test_sequence_click_hover_filter(page, server, screenshots):
    mount(page, server, "sequence_diagram", seq_state())
    page.wait_for_selector("[data-ready='1']")
    box = page.locator(".viewport").bounding_box()
    xs = lane_x(page)
    # Row 2 sits at HEADER + 2 rows + half a row from the top of the viewport.
    page.mouse.move(box["x"] + (xs[0] + xs[1]) / 2, box["y"] + HEADER + 2 * ROW + 11)
    tip = page.locator(".tip")
    assert "{:update, 2}" in tip.inner_text()
    assert tip.inner_text().startswith("Demo.WorkerA → Demo.WorkerB · info · 50 µs")
    page.mouse.click(box["x"] + (xs[0] + xs[1]) / 2, box["y"] + HEADER + 2 * ROW + 11)
    assert page.evaluate("model.get('selected')") == 12
    page.fill("input.filter", "update, 5")
    assert page.locator(".info").inner_text().startswith("1 of 6 messages")
    page.fill("input.filter", "")
    page.mouse.click(box["x"] + xs[0], box["y"] + 14)          # the first lifeline's name
    assert page.evaluate("model.get('hidden')") == ["<0.2.0>"]
    assert "1 processes" in page.locator(".info").inner_text()
    page.click("button.show-all")
    assert page.evaluate("model.get('hidden')") == []
    page.screenshot(path=str(screenshots / "fake_sequence_diagram.png"))


def test_sequence_tooltip_at_the_pointer_and_the_arrow_highlighted(page, server):
    mount(page, server, "sequence_diagram", seq_state())
    page.wait_for_selector("[data-ready='1']")
    box = page.locator(".viewport").bounding_box()
    xs = lane_x(page)
    x, y = (xs[0] + xs[1]) / 2, HEADER + ROW + 11          # row 1's arrow
    before = canvas_pixel(page, x, y)
    page.mouse.move(box["x"] + x, box["y"] + y)
    tip = page.locator(".tip").bounding_box()
    distance = ((tip["x"] - (box["x"] + x)) ** 2 + (tip["y"] - (box["y"] + y)) ** 2) ** 0.5
    assert distance < 30, f"the tooltip is {distance:.0f} px from the pointer"
    page.wait_for_timeout(50)
    assert canvas_pixel(page, x, y) == [0xf9, 0xab, 0x00] != before   # highlighted in "selected"
    page.mouse.move(box["x"] + x, box["y"] + 10)   # over the header: no message
    assert not page.locator(".tip").is_visible()


def test_sequence_first_row_is_below_the_header_and_keys_navigate(page, server):
    mount(page, server, "sequence_diagram", seq_state())
    page.wait_for_selector("[data-ready='1']")
    box = page.locator(".viewport").bounding_box()
    xs = lane_x(page)
    page.mouse.move(box["x"] + xs[0] + 30, box["y"] + HEADER + 4)
    assert "{:update, 0}" in page.locator(".tip").inner_text()
    page.focus(".viewport")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("model.get('selected')") == 10
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    assert page.evaluate("model.get('selected')") == 11
    assert page.evaluate("model.get('cursor')") == 11       # linked widgets follow
    page.keyboard.press("End")
    assert page.evaluate("model.get('selected')") == 15


def test_sequence_zoom_moves_headers_and_lifelines_together(page, server, screenshots):
    mount(page, server, "sequence_diagram", seq_state(120))
    page.wait_for_selector("[data-ready='1']")
    box = page.locator(".viewport").bounding_box()
    for button in ["zoom-out", "zoom-out", "zoom-in", "zoom-out"]:
        page.click(f"button.{button}")
        xs = lane_x(page)
        # the lifeline is drawn at the header's x (sampled below the last visible arrow's label)
        for x in xs:
            assert canvas_pixel(page, x, box["height"] - 3) != canvas_pixel(page, x + 6, box["height"] - 3)
        # and a click on the header at that x hides that process
        page.mouse.click(box["x"] + xs[1], box["y"] + 14)
        assert page.evaluate("model.get('hidden')") == ["<0.3.0>"]
        page.click("button.show-all")
    page.click("button.fit")
    assert float(page.get_attribute("#root", "data-scale")) * 120 <= box["height"]   # all rows fit
    page.click("button.reset")
    assert float(page.get_attribute("#root", "data-scale")) == ROW
    assert lane_x(page)[1] - lane_x(page)[0] == 150
    page.screenshot(path=str(screenshots / "fake_sequence_zoomed.png"))


def test_sequence_drag_pans_without_selecting(page, server):
    mount(page, server, "sequence_diagram", seq_state(400))
    page.wait_for_selector("[data-ready='1']")
    box = page.locator(".viewport").bounding_box()
    page.mouse.move(box["x"] + 300, box["y"] + 300)
    page.mouse.down()
    page.mouse.move(box["x"] + 300, box["y"] + 200, steps=5)
    page.mouse.up()
    assert page.evaluate("document.querySelector('.viewport').scrollTop") >= 90
    assert page.evaluate("model.get('selected')") == -1
    assert page.evaluate("model.saved.length") == 0


def backlog_state():
    """WorkerA sends 5 messages 100 µs apart; WorkerB handles each 2 ms later than the last."""
    state = seq_state(5)
    state["msgs"]["send_us"] = [0.0, 100.0, 200.0, 300.0, 400.0]
    state["msgs"]["end_us"] = [50.0, 2050.0, 4050.0, 6050.0, None]     # the last one was lost
    state["msgs"]["wait_us"] = [50.0, 1950.0, 3850.0, 5750.0, None]
    state["activations"] = [[1, 50.0, 1990.0, "handle_info"], [1, 2050.0, 1990.0, "handle_info"]]
    state["queue"] = [[1, 100.0, 1], [1, 200.0, 2], [1, 300.0, 3], [1, 2050.0, 2]]
    state["crashes"] = [{"lane": 1, "row": 3, "t_us": 6100.0, "text": "normal", "abnormal": False}]
    state["marks"] = [{"seq": 12, "t_us": 200.0, "lane": 1, "severity": "warning",
                       "text": "the mailbox of Demo.WorkerB grew to 3 messages"}]
    state["mode"] = "time"
    return state


def test_time_mode_ends_a_backlogged_arrow_where_it_was_handled(page, server, screenshots):
    mount(page, server, "sequence_diagram", backlog_state())
    page.wait_for_selector("[data-ready='1']")
    assert page.get_attribute("#root", "data-mode") == "time"
    box = page.locator(".viewport").bounding_box()
    scale = float(page.get_attribute("#root", "data-scale"))      # px per µs
    xs = lane_x(page)
    y_of = lambda us: HEADER + PAD + us * scale                  # noqa: E731
    # near the receiver, at the time message 3 (sent at 300 µs) was handled: that arrow
    top = max(0, y_of(6050.0) - 300)
    page.evaluate(f"document.querySelector('.viewport').scrollTop = {top}")
    page.wait_for_timeout(50)
    top = page.evaluate("document.querySelector('.viewport').scrollTop")
    page.mouse.move(box["x"] + xs[1] - 6, box["y"] + y_of(6050.0) - 1 - top)
    text = page.locator(".tip").inner_text()
    assert "{:update, 3}" in text and "waited 5.75 ms" in text, text
    page.screenshot(path=str(screenshots / "fake_sequence_time_mode.png"))
    # a normal exit is an end, not a crash: no crash red at WorkerB's exit
    y = y_of(6100.0) - top
    red = page.evaluate("""([x, y]) => {
        const c = document.querySelector('.mic-seq canvas'), d = window.devicePixelRatio || 1;
        const px = c.getContext('2d').getImageData((x - 8) * d, (y - 8) * d, 16 * d, 16 * d).data;
        let n = 0; for (let i = 0; i < px.length; i += 4) if (px[i] > 200 && px[i + 1] < 80 && px[i + 2] < 80) n++;
        return n; }""", [xs[1], y])
    assert red == 0
    # where a horizontal arrow would have ended: not that message
    page.evaluate("document.querySelector('.viewport').scrollTop = 0")
    page.wait_for_timeout(50)
    page.mouse.move(box["x"] + xs[1] - 6, box["y"] + y_of(300.0))
    assert "{:update, 3}" not in (page.locator(".tip").inner_text()
                                  if page.locator(".tip").is_visible() else "")
    # the finding's mark: clicking it moves the cursor to its seq
    page.mouse.click(box["x"] + 13, box["y"] + y_of(200.0))
    assert page.evaluate("model.get('cursor')") == 12
    # t switches back to compact, keeping the selection in view
    page.focus(".viewport")
    page.keyboard.press("t")
    assert page.evaluate("model.get('mode')") == "compact"


def test_sequence_redraws_when_resized(page, server):
    mount(page, server, "sequence_diagram", seq_state())
    page.wait_for_selector("[data-ready='1']")
    page.evaluate("document.getElementById('root').style.width = '600px'")
    page.wait_for_function("document.querySelector('.mic-seq canvas').style.width === "
                           "document.querySelector('.viewport').clientWidth + 'px'")
    assert page.evaluate("document.querySelector('.viewport').clientWidth") < 600


def test_sequence_50k_messages_render_and_pan(page, server):
    n = 50_000
    state = seq_state(n)
    state["crashes"] = []
    mount(page, server, "sequence_diagram", state)
    page.wait_for_selector("[data-ready='1']")
    assert page.evaluate("window.renderMs") < 2000
    page.evaluate("document.querySelector('.viewport').scrollTop = 500000")
    page.wait_for_timeout(100)
    frame_ms = float(page.get_attribute("#root", "data-frame-ms"))
    assert frame_ms < 16, f"a frame took {frame_ms} ms on average"


def test_time_travel_keys_and_slider(page, server, screenshots):
    state = {"n_events": 100, "cursor": 5, "proc": "", "event_text": "#5 send",
             "snapshot": [{"pid": "<0.3.0>", "name": "Demo.WorkerB", "alive": True,
                           "state_text": "%{count: 3}", "mailbox": ["{:update, 4}"],
                           "mailbox_len": 1, "current_callback": "", "diff_text": ".count: 2 -> 3",
                           "relations": "links Demo.Sup · monitored by <0.9.0>", "changed": True}]}
    mount(page, server, "time_travel", state)
    assert page.locator("tr.changed").count() == 1
    assert page.locator("td.relations").inner_text() == "links Demo.Sup · monitored by <0.9.0>"
    assert ".count: 2 -> 3" in page.locator(".diff").inner_text()
    page.focus(".mic-tt")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("model.sent") == [{"event": "step", "delta": 1}, {"event": "step", "delta": -1}]
    page.fill("input.seq", "42")
    page.dispatch_event("input.seq", "change")
    assert page.evaluate("model.get('cursor')") == 42
    assert page.get_attribute("input.slider", "data-lm-suppress-shortcuts") == "true"
    page.screenshot(path=str(screenshots / "fake_time_travel.png"))


def test_time_travel_pins_changes_filters_and_says_what_is_wrong(page, server, screenshots):
    row = {"alive": True, "state_text": "%{}", "mailbox": [], "mailbox_len": 0, "current_callback": "",
           "diff_text": "", "relations": "", "changed": False, "exit_text": ""}
    rows = [{**row, "pid": f"<0.{i}.0>", "name": f"Demo.W{i}", "ancestors": ["<0.1.0>"]} for i in range(2, 80)]
    rows.insert(0, {**row, "pid": "<0.1.0>", "name": "Demo.Sup", "ancestors": []})
    rows[60] = {**rows[60], "changed": True, "diff_text": ".n: 1 -> 2"}
    rows[70] = {**rows[70], "alive": False, "exit_text": "exited: {:badmatch, 3}", "changed": True,
                "ancestors": ["<0.90.0>"]}
    state = {"n_events": 500, "cursor": 40, "proc": "", "event_text": "#40 exit", "snapshot": rows,
             "marks": [{"seq": 250, "severity": "error", "text": "Demo.W71 crashed"}],
             "supervisors": [{"pid": "<0.1.0>", "name": "Demo.Sup"}, {"pid": "<0.90.0>", "name": "Demo.Other"}],
             "message": ""}
    mount(page, server, "time_travel", state)
    # the changed rows come first, pinned, the dead one with its name and reason
    first = page.locator("tr[data-pid]").nth(0)
    assert "pinned" in first.get_attribute("class") and "Demo.W61" in first.inner_text()
    dead = page.locator("tr.dead")
    assert "Demo.W71" in dead.inner_text() and "exited: {:badmatch, 3}" in dead.inner_text()
    page.check("input.only-changed")
    assert page.locator("tr[data-pid]").count() == 2
    page.uncheck("input.only-changed")
    page.select_option("select.supervisor", "<0.1.0>")
    assert page.locator("tr[data-pid]").count() == 78   # the supervisor and its 77 (one has another)
    page.select_option("select.supervisor", "")
    # a typed position outside the recording: said, not silently clamped
    page.fill("input.seq", "999999")
    page.dispatch_event("input.seq", "change")
    assert "seq 999999 is outside the recording: seqs run from 0 to 499" in page.locator(".message").inner_text()
    assert page.evaluate("model.get('cursor')") == 40
    # a finding's tick under the slider moves the cursor to it
    page.click(".mark[data-seq='250']")
    assert page.evaluate("model.get('cursor')") == 250
    # findings close together are one tick: counted, all in its title, each click the next
    page.evaluate("""model.set('marks', [{seq: 250, severity: 'error', text: 'Demo.W71 crashed'},
        {seq: 251, severity: 'warning', text: 'a'}, {seq: 252, severity: 'info', text: 'b'},
        {seq: 253, severity: 'warning', text: 'c'}, {seq: 254, severity: 'info', text: 'd'},
        {seq: 400, severity: 'info', text: 'far'}])""")
    ticks = page.locator(".marks .mark")
    assert ticks.count() == 2
    pile = page.locator(".mark.many")
    assert pile.inner_text() == "5" and "error" in pile.get_attribute("class")
    assert all(f"#{seq} " in pile.get_attribute("title") for seq in range(250, 255))
    for seq in (250, 251, 252):
        pile.click()
        assert page.evaluate("model.get('cursor')") == seq
    # Python's feedback shows too
    page.evaluate("model.set('message', \"no recorded process matches 'Demo.WorkerZ'\")")
    assert "Demo.WorkerZ" in page.locator(".message").inner_text()
    # the state column keeps its room at 80 processes
    widths = page.evaluate("[...document.querySelectorAll('.mic-tt th')].map((t) => t.offsetWidth)")
    assert widths[1] >= 300, widths
    page.screenshot(path=str(screenshots / "fake_time_travel_filters.png"))


def timeline_state():
    """WorkerA: born at 5 ms, a callback every 10 ms (the 5th takes 30 ms), dies :normal at 90 ms.
    WorkerB: crashes at 80 ms; its mailbox climbs to 6. Nothing recorded from 40 to 50 ms."""
    handlers = [[0, 10.0 * k, 30.0 if k == 5 else 1.0, 0] for k in range(1, 9)]
    handlers += [[1, 10.0 * k + 2, 2.0, 1] for k in range(8)]
    return {
        "lanes": [{"id": "<0.2.0>", "label": "Demo.WorkerA", "start": 5.0, "end": 90.0, "born": True,
                   "exited": True, "abnormal": False, "reason": ":normal"},
                  {"id": "<0.3.0>", "label": "Demo.WorkerB", "start": 0.0, "end": 80.0, "born": False,
                   "exited": True, "abnormal": True, "reason": "{:badmatch, 3}"}],
        "handlers": handlers, "callbacks": ["handle_info", "handle_call"],
        "calls": [[0, 61.0, 4.0, 0]], "mfas": ["Demo.WorkerA.flush/1"],
        "gcs": [[0, 30.0]], "mailbox": [[1, 10.0, 1], [1, 20.0, 3], [1, 30.0, 6], [1, 60.0, 2]],
        "gaps": [[40.0, 50.0]],
        "marks": [{"seq": 7, "t_ms": 80.0, "lane": 1, "severity": "error", "text": "Demo.WorkerB crashed"}],
        "span": 100.0, "cursor": -1, "cursor_ms": None,
    }


LEFT, AXIS, TRACK = 170, 26, 24      # timeline.js: label column, time axis, track height


def test_timeline_tracks_hover_and_brush(page, server, screenshots):
    mount(page, server, "timeline", timeline_state())
    page.wait_for_selector("[data-ready='1']")
    box = page.locator(".viewport").bounding_box()
    width = box["width"] - LEFT - 10
    x_of = lambda ms: box["x"] + LEFT + ms / 100.0 * width      # noqa: E731
    lane_y = lambda k: box["y"] + AXIS + k * TRACK + 9           # noqa: E731  WorkerA: 0; WorkerB: 1
    page.mouse.move(x_of(55.0), lane_y(0))           # the 30 ms callback (50-80 ms)
    assert page.locator(".tip").inner_text().startswith("Demo.WorkerA · handle_info · 30.0 ms")
    page.mouse.move(x_of(80.0), lane_y(1))           # the crash, with its reason
    text = page.locator(".tip").inner_text()
    assert "crashed at 80.0 ms" in text or "Demo.WorkerB crashed" in text
    page.mouse.move(x_of(90.0), lane_y(0))           # a normal end is not a crash
    assert "exited at 90.0 ms" in page.locator(".tip").inner_text()
    # the mailbox track, under WorkerB, with its y axis
    page.mouse.move(x_of(35.0), box["y"] + AXIS + 2 * TRACK + 17)
    assert page.locator(".tip").inner_text() == "Demo.WorkerB · mailbox 6 at 35.0 ms"
    # shift+drag selects 0-70 ms and sums up the callbacks in it
    page.keyboard.down("Shift")
    page.mouse.move(x_of(0.5), lane_y(0))
    page.mouse.down()
    page.mouse.move(x_of(70.0), lane_y(0), steps=4)
    page.mouse.up()
    page.keyboard.up("Shift")
    summary = page.locator(".summary").inner_text()
    assert "Demo.WorkerA · handle_info: 6 calls" in summary and "p99 30.0 ms" in summary, summary
    page.screenshot(path=str(screenshots / "fake_timeline.png"))
    # a finding's mark: a click goes straight to its evidence
    page.mouse.click(x_of(80.0), box["y"] + AXIS + TRACK + 3)
    assert page.evaluate("model.get('cursor')") == 7
    # elsewhere, a click asks Python to move the cursor to that time
    page.mouse.click(x_of(25.0), lane_y(1))
    sent = page.evaluate("model.sent")
    assert sent[-1]["event"] == "seek_ms" and abs(sent[-1]["ms"] - 25.0) < 0.5


def test_timeline_zoom_pan_and_resize(page, server):
    mount(page, server, "timeline", timeline_state())
    page.wait_for_selector("[data-ready='1']")
    view = lambda: [float(v) for v in page.get_attribute("#root", "data-view").split(",")]  # noqa: E731
    assert view() == [0.0, 100.0]
    page.click("button.zoom-in")
    a, b = view()
    assert abs((b - a) - 100 / 1.5) < 0.01
    page.focus(".viewport")
    page.keyboard.press("d")                          # pan right
    assert view()[0] > a
    page.keyboard.press("f")
    assert view() == [0.0, 100.0]
    page.evaluate("document.getElementById('root').style.width = '700px'")
    page.wait_for_function("document.querySelector('.mic-timeline canvas').style.width === "
                           "document.querySelector('.mic-timeline .viewport').clientWidth + 'px'")


def graph_state():
    return {
        "nodes": [{"id": "<0.2.0>", "label": "Demo.WorkerA", "sent": 40, "received": 0, "crashed": False},
                  {"id": "<0.3.0>", "label": "Demo.WorkerB", "sent": 20, "received": 40, "crashed": True},
                  {"id": "<0.4.0>", "label": "Demo.Stats", "sent": 0, "received": 20, "crashed": False}],
        "edges": [{"from": 0, "to": 1, "count": 40, "median_us": 50.0, "max_us": 900.0, "last_seq": 80},
                  {"from": 1, "to": 2, "count": 20, "median_us": 250000.0, "max_us": 400000.0, "last_seq": 81}],
        "flights": {"from": [0] * 40, "to": [1] * 40, "send_ms": [2.0 * k for k in range(40)],
                    "end_ms": [2.0 * k + 1 for k in range(40)]},
        "seq_times": [[2.0 * k, 2 * k] for k in range(41)], "span": 80.0, "cursor": -1,
        "playing": False, "speed": 1.0, "focus": -1, "path": [],
        "marks": [{"seq": 81, "severity": "warning", "text": "Demo.Stats fell behind"}],
    }


def test_process_graph_plays_hovers_and_focuses(page, server, screenshots):
    mount(page, server, "process_graph", graph_state())
    page.wait_for_selector("[data-ready='1']")
    nodes = page.evaluate("JSON.parse(document.getElementById('root').dataset.nodes)")
    box = page.locator("canvas").bounding_box()
    page.mouse.move(box["x"] + nodes[1][0], box["y"] + nodes[1][1])
    assert page.locator(".tip").inner_text().startswith("Demo.WorkerB <0.3.0>")
    assert "crashed" in page.locator(".tip").inner_text()
    # hover along the WorkerB -> Stats edge, find it, click it: its causal chain is asked for
    found = False
    for u in [i / 20 for i in range(3, 18)]:
        x = nodes[1][0] + (nodes[2][0] - nodes[1][0]) * u
        y = nodes[1][1] + (nodes[2][1] - nodes[1][1]) * u
        for dy in range(-20, 21, 2):
            page.mouse.move(box["x"] + x, box["y"] + y + dy)
            if page.locator(".tip").is_visible() and \
                    page.locator(".tip").inner_text().startswith("Demo.WorkerB → Demo.Stats"):
                found = True
                break
        if found:
            break
    assert found, "no tooltip along the WorkerB -> Stats edge"
    assert "20 messages · median wait 250.0 ms" in page.locator(".tip").inner_text()
    page.mouse.click(box["x"] + x, box["y"] + y + dy)
    assert page.evaluate("model.get('focus')") == 81
    page.evaluate("""model.set('path', [{from: 0, to: 1, send_seq: 80, text: '{:update, 3}', wait_us: 50,
                     worked_us: null, slowest: false}, {from: 1, to: 2, send_seq: 81, text: '{:stat, 3}',
                     wait_us: 250000, worked_us: 12, slowest: true}])""")
    text = page.locator(".path").inner_text()
    assert "2. Demo.WorkerB → Demo.Stats" in text and "waited 250.0 ms  ← the longest wait" in text
    # a finding from the menu is focused the same way
    page.select_option("select.findings", "81")
    assert page.evaluate("model.get('focus')") == 81
    # play at 0.1x (80 ms take 0.8 s): the cursor, and every linked widget, moves with the messages
    page.select_option("select.speed", "0.1")
    page.click("button.play")
    page.wait_for_function("model.get('cursor') > 4", timeout=5000)
    page.wait_for_function("model.get('playing') === false", timeout=10000)   # stops at the end
    assert page.evaluate("model.get('cursor')") >= 70
    page.screenshot(path=str(screenshots / "fake_process_graph.png"))


def test_source_view_scrolls_to_the_line_and_shades_what_ran(page, server, screenshots):
    lines = [f"  # line {n}" for n in range(1, 201)]
    lines[119] = "  def handle_info({:update, n}, state) do"
    state = {"module": "Demo.WorkerB", "path": "/app/lib/demo/worker_b.ex", "lines": lines,
             "functions": {"init/1": 8, "handle_info/2": 120, "terminate/2": 150},
             "ran": {"handle_info/2": [9, 569.2], "init/1": [1, 3.0]}, "line": 120,
             "function": "handle_info/2", "what": "crashed in handle_info/2 at line 120",
             "note": "source read from the local checkout: /src/worker_b.ex"}
    mount(page, server, "source_view", state)
    page.wait_for_selector("[data-ready='1']")
    target = page.locator(".ln.target")
    assert target.get_attribute("data-line") == "120" and target.is_visible()   # scrolled to it
    assert "9× · 569 µs" in target.inner_text()
    assert page.locator(".ln[data-function='handle_info/2']").count() == 30    # lines 120-149
    shaded = page.locator(".ln[data-line='130']").evaluate("(el) => el.style.background")
    assert shaded.startswith("rgba("), shaded
    assert page.locator(".ln[data-line='160']").evaluate("(el) => el.style.background") == ""
    assert "local checkout" in page.locator(".note").inner_text()
    page.screenshot(path=str(screenshots / "fake_source_view.png"))


def test_empty_widgets_say_so(page, server):
    state = seq_state(0)
    state["crashes"] = []
    mount(page, server, "sequence_diagram", state)
    page.wait_for_selector("[data-ready='1']")
    assert "no messages recorded" in page.locator(".empty").inner_text()


def test_a_filter_that_hides_everything_says_so(page, server):
    mount(page, server, "sequence_diagram", seq_state())
    page.wait_for_selector("[data-ready='1']")
    assert not page.locator(".empty").is_visible()
    page.fill("input.filter", "no such message")
    assert "no message matches the filter" in page.locator(".empty").inner_text()


def test_an_empty_timeline_says_so(page, server):
    mount(page, server, "timeline", {**timeline_state(), "lanes": [], "handlers": [], "calls": [],
                                     "gcs": [], "mailbox": [], "gaps": [], "marks": []})
    page.wait_for_selector("[data-ready='1']")
    assert "nothing recorded yet" in page.locator(".empty").inner_text()


def test_hovering_a_call_lights_its_reply(page, server):
    state = seq_state(4)
    state["crashes"] = []
    state["msgs"]["kind"] = ["call", "info", "info", "reply"]
    state["msgs"]["from"] = [0, 0, 0, 1]
    state["msgs"]["to"] = [1, 1, 1, 0]
    state["msgs"]["pair"] = [3, -1, -1, 0]
    mount(page, server, "sequence_diagram", state)
    page.wait_for_selector("[data-ready='1']")
    box = page.locator(".viewport").bounding_box()
    xs = lane_x(page)
    x = (xs[0] + xs[1]) / 2
    reply_y = HEADER + 3 * ROW + 11
    before = canvas_pixel(page, x, reply_y)
    page.mouse.move(box["x"] + x, box["y"] + HEADER + 11)          # over the call
    assert "replied by #13" in page.locator(".tip").inner_text()
    page.wait_for_timeout(50)
    assert canvas_pixel(page, x - 3, reply_y) == [0xf9, 0xab, 0x00] or \
        canvas_pixel(page, x, reply_y) == [0xf9, 0xab, 0x00], before   # the reply is lit too
