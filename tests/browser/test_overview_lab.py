"""s.overview() in a real JupyterLab, attached to a real node the test starts:
the widget renders its tabs, a click on a process shows that process's
details, and "show in tree" opens the supervision tree inside the overview."""

from __future__ import annotations

import nbformat
import pytest
from browsing import jupyterlab, kernel, page_error

SETUP = ("import microscope_jupyter as mic\n"
         "s = mic.attach({node!r})\n"
         "s.eval_erlang('register(ov_hoard, spawn(fun() -> receive stop -> ok end end)), ok.')\n"
         "with s.trace('ov_hoard', mailbox_ms=50, duration=5):\n"
         "    s.eval_erlang('[ov_hoard ! {{m, N}} || N <- lists:seq(1, 200)], timer:sleep(300), ok.')\n"
         "hoard = str(s.rpc('erlang', 'whereis', [mic.Atom('ov_hoard')]))")


@pytest.fixture(scope="module")
def page(browser, node_factory, tmp_path_factory):
    node = node_factory("otp25", prefix="ovlab")
    work = tmp_path_factory.mktemp("overview-lab")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(SETUP.format(node=node.name)),
                nbformat.v4.new_code_cell("ov = s.overview(window=0.2, top=5)\nov")]
    nbformat.write(nb, work / "overview.ipynb")
    with jupyterlab(work, MICROSCOPE_COOKIE=node.cookie) as lab:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.errors = []
        pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: pg.errors.extend([t for t in [page_error(e)] if t]))
        pg.goto(f"{lab['url']}/lab/tree/overview.ipynb?token={lab['token']}")
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
        pg.wait_for_selector(".mic-overview .schedulers [data-scheduler]", timeout=120_000)
        yield pg
        kernel(pg, "s.detach()")
        context.close()


def test_the_overview_renders_and_a_click_shows_the_process(page, screenshots):
    overview = page.locator(".mic-overview").first
    overview.scroll_into_view_if_needed()
    assert overview.locator(".memory [data-category=total]").is_visible()
    overview.screenshot(path=str(screenshots / "lab_overview_system.png"))

    overview.locator("button[data-tab=processes]").click()
    row = overview.locator("[data-top=mailbox] tr.proc").first
    row.wait_for()
    hoard = kernel(page, "print(hoard)").strip()
    assert row.get_attribute("data-pid") == hoard and "ov_hoard" in row.inner_text()
    row.click()
    counters = overview.locator(".details .counters")
    counters.wait_for(timeout=10_000)
    assert "mailbox 200" in counters.inner_text()
    assert kernel(page, "print(ov.selected)").strip() == hoard
    overview.screenshot(path=str(screenshots / "lab_overview_details.png"))

    overview.locator("button[data-tab=recorded]").click()
    recorded = overview.locator("[data-top=mailbox] tr.proc").first
    recorded.wait_for()
    assert recorded.get_attribute("data-pid") == hoard and "200" in recorded.inner_text()
    assert overview.locator("input.at").is_visible()

    overview.locator("button.show-in-tree").click()
    tree = overview.locator(".tree-pane .mic-tree")
    tree.wait_for(timeout=20_000)
    assert kernel(page, "print(ov.tab, ov.tree.selected)").strip() == f"tree {hoard}"
    page.wait_for_function("(pid) => [...document.querySelectorAll('.mic-overview .mic-tree "
                           ".details')].some(d => d.textContent.includes(pid))", arg=hoard,
                           timeout=10_000)
    assert tree.locator(f".row.sel[data-pid='{hoard}']").is_visible()   # searched for: in view
    overview.screenshot(path=str(screenshots / "lab_overview_tree.png"))

    page.set_viewport_size({"width": 500, "height": 1000})        # narrow: nothing spills out
    overview.locator("button[data-tab=system]").click()
    page.wait_for_timeout(300)
    for tab in ("system", "processes", "ets", "ports", "recorded"):
        overview.locator(f"button[data-tab={tab}]").click()
        spill = page.evaluate("""() => { const r = document.querySelector('.mic-overview');
            return r.scrollWidth - r.clientWidth; }""")
        assert spill <= 1, (tab, spill)
    overview.screenshot(path=str(screenshots / "lab_overview_narrow.png"))
    errors = [e for e in page.errors if "favicon" not in e]
    assert not errors, "\n".join(errors)
