"""Two people on one notebook: JupyterLab with jupyter-collaboration (real-time
collaboration), two browser contexts on the same notebook and kernel.

Widget models live in the kernel, not in the shared document; each browser's
widget manager restores them from the kernel, and the kernel's updates go to
every client. So both must draw the same diagram, follow one time-travel
cursor (whoever moves it) and show the same annotations as they are added.

One step is the second person's: outputs that reached a browser through the
shared document (someone else ran the cell) are untrusted there, and
JupyterLab renders no widget view for an untrusted output. Until they trust
the notebook they see each widget's static rendering (notes included); after
"Trust Notebook" the widgets are live from the shared kernel.
"""

from __future__ import annotations

import nbformat
import pytest
from browsing import jupyterlab, kernel
from fake_agent import annotated_recording

pytest.importorskip("jupyter_collaboration")

NOTEBOOK = "shared.ipynb"


@pytest.fixture(scope="module")
def shared_lab(tmp_path_factory):
    work = tmp_path_factory.mktemp("rtc")
    annotated_recording().save(work / "rec")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import microscope_jupyter as mic\n"
                                          "s = mic.load('rec')"),
                nbformat.v4.new_code_cell("tt = mic.widgets.TimeTravel(s)\ntt"),
                nbformat.v4.new_code_cell("seq = mic.widgets.SequenceDiagram(s)\nseq")]
    nbformat.write(nb, work / NOTEBOOK)
    with jupyterlab(work) as server:   # installed, jupyter-collaboration is on
        yield server


def open_notebook(browser, lab, who: str):
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"{who}: {e}"))
    page.goto(f"{lab['url']}/lab/tree/{NOTEBOOK}?token={lab['token']}")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                           timeout=60_000)
    page.errors = errors
    return context, page


def cursor_shown(page) -> str:
    return page.locator(".mic-tt").first.evaluate("el => el.parentElement.dataset.cursor")


def test_two_browsers_share_the_diagram_the_cursor_and_the_notes(browser, shared_lab,
                                                                  screenshots):
    ctx_a, ana = open_notebook(browser, shared_lab, "ana")
    ctx_b, bo = open_notebook(browser, shared_lab, "bo")
    try:
        # both browsers are on one kernel
        kernel_of = "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id"
        assert ana.evaluate(kernel_of) == bo.evaluate(kernel_of)
        ana.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        ana.wait_for_selector(".mic-tt .event", timeout=60_000)
        # bo ran nothing: the outputs reach him untrusted, as the static renderings
        bo.wait_for_function("() => document.body.innerText.includes('Time travel at event 0')",
                             timeout=60_000)
        assert bo.locator(".mic-tt").count() == 0
        assert "the first update, on time" in bo.locator(".jp-OutputArea-output").first.inner_text()
        # he trusts the notebook, as JupyterLab asks: the widgets come live from the kernel
        bo.evaluate("() => { window.jupyterapp.commands.execute('notebook:trust'); }")
        bo.locator(".jp-Dialog .jp-mod-accept").click()
        for page in (ana, bo):
            page.wait_for_selector(".mic-tt .event", timeout=60_000)
            page.wait_for_selector(".mic-seq [data-lane-x], [data-lane-x] .mic-seq",
                                   state="attached", timeout=60_000)
        lanes = [p.locator("[data-lane-x]").first.get_attribute("data-lane-x") for p in (ana, bo)]
        labels = [p.locator(".mic-seq").first.inner_text() for p in (ana, bo)]
        assert lanes[0] == lanes[1] and labels[0] == labels[1]

        # the cursor: ana moves it, bo sees it; bo moves it, ana sees it
        assert cursor_shown(ana) == cursor_shown(bo) == "0"
        ana.locator(".mic-tt button.next").first.click()
        bo.wait_for_function("() => document.querySelector('.mic-tt').parentElement"
                             ".dataset.cursor === '1'", timeout=10_000)
        bo.locator(".mic-tt .notes .note[data-note='2']").first.click()   # the note at seq 4
        ana.wait_for_function("() => document.querySelector('.mic-tt').parentElement"
                              ".dataset.cursor === '4'", timeout=10_000)
        assert kernel(ana, "print(tt.cursor)").strip() == "4"
        assert ana.locator(".mic-tt .event").first.inner_text() == \
            bo.locator(".mic-tt .event").first.inner_text()

        # a note added in the kernel appears on both, on every widget, at once
        kernel(ana, "s.annotate(10, 'seen by both of us', author='ana')")
        for page in (ana, bo):
            page.wait_for_function("() => [...document.querySelectorAll('.notes')].filter("
                                   "n => n.innerText.includes('seen by both of us')).length >= 2",
                                   timeout=10_000)
        bo.screenshot(path=str(screenshots / "collaboration_second_browser.png"), full_page=True)
        assert ana.errors == [] and bo.errors == [], ana.errors + bo.errors
    finally:
        ctx_a.close()
        ctx_b.close()
