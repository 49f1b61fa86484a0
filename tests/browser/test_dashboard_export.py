"""s.dashboard() in a notebook exported to HTML draws with no network at all.

The notebook loads a saved recording, shows two dashboards (plotly.js is
inlined into the first only), is executed by nbclient and exported by
nbconvert's HTML exporter; Chromium then opens the file with every request
that is not the file itself refused, and the figures must have drawn.
"""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from browsing import offline_page
from fake_agent import B, MS, demo_recording, updates


def build(agent):
    updates(agent, 0, 40, 10, lambda n: 1 if n % 10 else 30)
    for n, length in enumerate([0, 4, 9, 2]):
        agent.event("mailbox", B, aux=length, ts=(n * 100 + 5) * MS)


def test_exported_dashboard_draws_offline(browser, tmp_path):
    demo_recording(build).save(tmp_path / "rec")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
                    f"import microscope_jupyter as mic\ns = mic.load({str(tmp_path / 'rec')!r})"),
                nbformat.v4.new_code_cell("s.dashboard()"),
                nbformat.v4.new_code_cell('s.dashboard(["Demo.WorkerB"])')]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    body, _ = HTMLExporter().from_notebook_node(nb)
    page_file = tmp_path / "report.html"
    page_file.write_text(body)

    context, page, refused = offline_page(browser, page_file)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length === 2",
                           timeout=30_000)
    drawn = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .map(p => p.querySelectorAll('.scatterlayer .trace').length)""")
    context.close()
    assert drawn[0] >= 2 and drawn[1] >= 2, drawn
    assert not page.errors, page.errors
    assert not any("plot" in url for url in refused), refused   # nothing of ours from a CDN
