"""Widget rendering in headless Chromium: 50k-message sequence diagram, 5k-process tree.

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


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--processes", type=int, default=5_000)
    args = parser.parse_args()
    httpd, url = serve()
    seq = sequence_state(args.messages)
    tree = tree_state(args.processes)
    table_html = pd.DataFrame({"from": seq["msgs"]["from"], "to": seq["msgs"]["to"],
                               "text": seq["msgs"]["text"], "status": seq["msgs"]["status"]}).to_html()
    results: dict[str, list[float]] = {"seq": [], "tree": [], "pan": [], "table": []}
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
            pan = page.evaluate("""async () => {
                const v = document.querySelector('.viewport');
                const times = [];
                for (let k = 0; k < 200; k++) {
                    v.scrollTop = k * 977; v.scrollLeft = (k % 10) * 40;
                    const t0 = performance.now();
                    await new Promise(r => requestAnimationFrame(() => r()));
                    times.push(performance.now() - t0);
                }
                return Number(document.getElementById('root').dataset.frameMs);
            }""")
            results["pan"].append(pan)
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
    print(f"  SupervisionTree, {args.processes:,} processes: first render {med['tree']:.0f} ms")
    print(f"  baseline, pandas HTML table of the same {args.messages:,} messages: {med['table']:.0f} ms")
    print(f"  ratio sequence diagram / pandas table: {med['seq'] / med['table']:.2f}x")


if __name__ == "__main__":
    main()
