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
    assert page.locator(".row").count() == 3
    page.click(".row[data-pid='<0.3.0>']")
    assert page.evaluate("model.get('selected')") == "<0.3.0>"
    assert page.evaluate("model.saved.length") == 1
    page.fill("input.search", "workera")
    assert page.locator(".row").count() == 2          # the match and its ancestor
    assert page.evaluate("model.get('query')") == "workera"
    page.fill("input.search", "")
    page.click(".row[data-pid='<0.1.0>'] .caret")
    assert page.locator(".row").count() == 1
    assert page.get_attribute("input.search", "data-lm-suppress-shortcuts") == "true"
    page.screenshot(path=str(screenshots / "fake_supervision_tree.png"))


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
                 "text": [f"{{:update, {i}}}" for i in range(n)]},
        "crashes": [{"lane": 1, "row": n - 2, "text": "function_clause"}],
        "selected": -1, "cursor": -1, "filter": "", "hidden": [], "row_filter": None,
    }


def test_sequence_click_hover_filter(page, server, screenshots):
    mount(page, server, "sequence_diagram", seq_state())
    page.wait_for_selector("[data-ready='1']")
    box = page.locator(".viewport").bounding_box()
    # Row 2 sits at HEADER (34) + 2 * 22 + 11 px from the top of the viewport.
    page.mouse.move(box["x"] + 200, box["y"] + 34 + 2 * 22 + 11)
    assert "{:update, 2}" in page.locator(".tip").inner_text()
    page.mouse.click(box["x"] + 200, box["y"] + 34 + 2 * 22 + 11)
    assert page.evaluate("model.get('selected')") == 12
    page.fill("input.filter", "update, 5")
    assert page.locator(".info").inner_text().startswith("1 of 6 messages")
    page.fill("input.filter", "")
    page.mouse.click(box["x"] + 80, box["y"] + 14)          # the first lifeline's name
    assert page.evaluate("model.get('hidden')") == ["<0.2.0>"]
    assert "1 processes" in page.locator(".info").inner_text()
    page.click("button.show-all")
    assert page.evaluate("model.get('hidden')") == []
    page.screenshot(path=str(screenshots / "fake_sequence_diagram.png"))


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


def test_timeline_draws_lanes(page, server, screenshots):
    state = {"lanes": [{"id": "<0.2.0>", "label": "Demo.WorkerA", "start": 0, "end": None, "exited": False},
                       {"id": "<0.3.0>", "label": "Demo.WorkerB", "start": 0, "end": 80, "exited": True}],
             "handlers": [[0, 10, 2], [1, 20, 5]], "gcs": [[0, 30]], "mailbox": [[1, 10, 1], [1, 20, 0]],
             "span": 100}
    mount(page, server, "timeline", state)
    assert page.locator("svg.timeline-svg rect").count() == 4
    assert "2 processes" in page.locator(".mic-timeline .bar").inner_text()
    page.screenshot(path=str(screenshots / "fake_timeline.png"))
