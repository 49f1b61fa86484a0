"""Widget rendering in headless Chromium: 50k-message sequence diagram (compact and
time mode), 5k-process tree, a 100k-callback timeline, a 200-process graph.

    .venv/bin/python bench/widgets_render.py [--runs 5]

Each widget's bundle is mounted on a static page with a fake model (the
same surface anywidget gives it), so the figures are the front end's own.
Baseline, measured in the same browser and run: the page rendering
pandas' HTML table of the same rows — what a notebook shows today without
the widget.
"""

from __future__ import annotations

import argparse
import http.server
import shutil
import statistics
import sys
import threading
from functools import partial
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from conftest import CHROMIUM_ARGS  # noqa: E402


def serve():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(ROOT)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def sequence_state(n: int, lanes: int = 12) -> dict:
    return {
        "lanes": [{"id": f"<0.{i}.0>", "label": f"Worker{i}"} for i in range(lanes)],
        "msgs": {"from": [i % lanes for i in range(n)], "to": [(i * 7 + 1) % lanes for i in range(n)],
                 "seq": list(range(n)), "recv_seq": list(range(1, n + 1)),
                 "kind": [("call", "reply", "cast", "info")[i % 4] for i in range(n)],
                 "status": ["lost" if i % 97 == 0 else "delivered" for i in range(n)],
                 "latency_us": [float(i % 300) for i in range(n)],
                 "text": [f"{{:update, {i}, %{{count: {i}}}}}" for i in range(n)]},
        "crashes": [], "selected": -1, "cursor": -1, "filter": "", "hidden": [], "row_filter": None,
    }


def tree_state(n: int) -> dict:
    nodes = [{"pid": "<0.0.0>", "name": "root", "parent": None, "kind": "supervisor",
              "status": "waiting", "message_queue_len": 0, "memory": 1}]
    for i in range(1, n):
        parent = f"<0.{(i - 1) // 20}.0>" if i > 20 else "<0.0.0>"
        nodes.append({"pid": f"<0.{i}.0>", "name": f"Worker{i}", "parent": parent,
                      "kind": "supervisor" if i % 20 == 0 else "worker",
                      "status": "waiting", "message_queue_len": i % 9, "memory": 1000 + i,
                      "initial_call": f"App.Worker{i % 50}.init/1"})
    return {"nodes": nodes, "selected": "", "query": "", "color_by": "status"}


# Pan: scroll through 200 positions, one frame each; the widget keeps its frame times.
PAN = """async () => {
    const v = document.querySelector('.viewport');
    for (let k = 0; k < 200; k++) {
        v.scrollTop = k * 977; v.scrollLeft = (k % 10) * 40;
        await new Promise(r => requestAnimationFrame(() => r()));
    }
    return Number(document.getElementById('root').dataset.frameMs);
}"""


def timeline_state(callbacks: int, lanes: int = 40) -> dict:
    per = callbacks // lanes
    return {
        "lanes": [{"id": f"<0.{i}.0>", "label": f"Worker{i}", "start": 0.0, "end": None, "born": False,
                   "exited": False, "abnormal": False, "reason": ""} for i in range(lanes)],
        "handlers": [[i % lanes, (i // lanes) * 0.1, 0.05 + (i % 7) * 0.01, i % 3]
                     for i in range(per * lanes)],
        "callbacks": ["handle_info", "handle_call", "handle_cast"], "calls": [], "mfas": [],
        "gcs": [], "mailbox": [[i % lanes, (i // lanes) * 1.0, i % 50] for i in range(20_000)],
        "gaps": [], "marks": [], "span": per * 0.1, "cursor": -1, "cursor_ms": None,
    }


def graph_state(processes: int) -> dict:
    edges = [{"from": i, "to": (i * 7 + 1) % processes, "count": 1 + i % 40,
              "median_us": float(50 + i * 13 % 5000), "max_us": 9000.0, "last_seq": i}
             for i in range(processes * 2)]
    n = 20_000
    return {
        "nodes": [{"id": f"<0.{i}.0>", "label": f"Worker{i}", "sent": i % 40, "received": i % 30,
                   "crashed": i % 50 == 0} for i in range(processes)],
        "edges": [{**e, "from": e["from"] % processes} for e in edges],
        "flights": {"from": [i % processes for i in range(n)],
                    "to": [(i * 7 + 1) % processes for i in range(n)],
                    "send_ms": [i * 0.05 for i in range(n)], "end_ms": [i * 0.05 + 2 for i in range(n)]},
        "seq_times": [[i * 0.5, i * 10] for i in range(2000)], "span": n * 0.05, "cursor": -1,
        "playing": False, "speed": 1.0, "focus": -1, "path": [], "marks": [],
    }


def mount(browser, url: str, name: str, state: dict):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{url}/tests/browser/fake_model.html")
    page.evaluate("([u, s]) => window.mount(u, s)",
                  [f"{url}/microscope_jupyter/widgets/static/{name}.js", state])
    return page


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--processes", type=int, default=5_000)
    parser.add_argument("--callbacks", type=int, default=100_000)
    parser.add_argument("--graph-processes", type=int, default=200)
    args = parser.parse_args()
    httpd, url = serve()
    seq = sequence_state(args.messages)
    tree = tree_state(args.processes)
    table_html = pd.DataFrame({"from": seq["msgs"]["from"], "to": seq["msgs"]["to"],
                               "text": seq["msgs"]["text"], "status": seq["msgs"]["status"]}).to_html()
    timeline = timeline_state(args.callbacks)
    graph = graph_state(args.graph_processes)
    results: dict[str, list[float]] = {"seq": [], "tree": [], "pan": [], "table": [], "seq_time": [],
                                       "pan_time": [], "timeline": [], "timeline_zoom": [],
                                       "graph": [], "graph_play": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        for _ in range(args.runs):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/tests/browser/fake_model.html")
            page.evaluate("([u, s]) => window.mount(u, s)",
                          [f"{url}/microscope_jupyter/widgets/static/sequence_diagram.js", seq])
            page.wait_for_selector("[data-ready='1']")
            results["seq"].append(page.evaluate("window.renderMs"))
            # Pan: scroll through 200 positions, one frame each; the widget keeps frame times.
            pan = page.evaluate(PAN)
            results["pan"].append(pan)
            page.close()

            # the same diagram in time mode (arrows from send to handling)
            timed = {**seq, "mode": "time", "msgs": {**seq["msgs"],
                     "send_us": [10.0 * i for i in range(args.messages)],
                     "end_us": [10.0 * i + (i % 300) for i in range(args.messages)]}}
            page = mount(browser, url, "sequence_diagram", timed)
            page.wait_for_selector("[data-ready='1']")
            results["seq_time"].append(page.evaluate("window.renderMs"))
            results["pan_time"].append(page.evaluate(PAN))
            page.close()

            page = mount(browser, url, "timeline", timeline)
            page.wait_for_selector("[data-ready='1']")
            results["timeline"].append(page.evaluate("window.renderMs"))
            results["timeline_zoom"].append(page.evaluate("""async () => {
                const times = [];
                for (let k = 0; k < 60; k++) {
                    document.querySelector(k % 2 ? 'button.zoom-out' : 'button.zoom-in').click();
                    await new Promise(r => requestAnimationFrame(() => r()));
                    times.push(Number(document.getElementById('root').dataset.frameMs));
                }
                times.sort((a, b) => a - b);
                return times[times.length >> 1];
            }"""))
            page.close()

            page = mount(browser, url, "process_graph", graph)
            page.wait_for_selector("[data-ready='1']")
            results["graph"].append(page.evaluate("window.renderMs"))
            results["graph_play"].append(page.evaluate("""async () => {
                document.querySelector('button.play').click();
                const times = [];
                let last = performance.now();
                for (let k = 0; k < 60; k++) {
                    await new Promise(r => requestAnimationFrame(() => r()));
                    const now = performance.now(); times.push(now - last); last = now;
                }
                times.sort((a, b) => a - b);
                return times[times.length >> 1];
            }"""))
            page.close()

            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/tests/browser/fake_model.html")
            page.evaluate("([u, s]) => window.mount(u, s)",
                          [f"{url}/microscope_jupyter/widgets/static/supervision_tree.js", tree])
            results["tree"].append(page.evaluate("window.renderMs"))
            page.close()

            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/tests/browser/fake_model.html")
            results["table"].append(page.evaluate("""(html) => {
                const t0 = performance.now();
                const el = document.getElementById('root');
                el.innerHTML = html;
                el.getBoundingClientRect();  // force layout
                return performance.now() - t0;
            }""", table_html))
            page.close()
        browser.close()
    httpd.shutdown()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"headless Chromium, median of {args.runs} runs")
    print(f"  SequenceDiagram, {args.messages:,} messages: first render {med['seq']:.0f} ms")
    print(f"  SequenceDiagram pan: {med['pan']:.2f} ms per frame (16.7 ms = 60 fps)")
    print(f"  SequenceDiagram, time mode: first render {med['seq_time']:.0f} ms, "
          f"pan {med['pan_time']:.2f} ms per frame")
    print(f"  SupervisionTree, {args.processes:,} processes: first render {med['tree']:.0f} ms")
    print(f"  Timeline, {args.callbacks:,} callbacks: first render {med['timeline']:.0f} ms, "
          f"zoom {med['timeline_zoom']:.2f} ms per frame (median)")
    print(f"  ProcessGraph, {args.graph_processes} processes: first render (with layout) "
          f"{med['graph']:.0f} ms, playback {med['graph_play']:.1f} ms between frames (median)")
    print(f"  baseline, pandas HTML table of the same {args.messages:,} messages: {med['table']:.0f} ms")
    print(f"  ratio sequence diagram / pandas table: {med['seq'] / med['table']:.2f}x")


if __name__ == "__main__":
    main()
