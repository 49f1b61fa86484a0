"""The command line: the exported HTML uses each widget's static rendering."""

from __future__ import annotations

import nbformat

from microscope_jupyter.cli import _static_copy, main

WIDGET = "application/vnd.jupyter.widget-view+json"


def test_static_copy_drops_live_views_and_widget_state():
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    cell = nbformat.v4.new_code_cell("seq")
    cell.outputs = [nbformat.v4.new_output("execute_result", data={
        WIDGET: {"model_id": "abc"}, "text/html": "<svg/>", "text/plain": "<SequenceDiagram>"},
        execution_count=1)]
    plain = nbformat.v4.new_code_cell("1")
    plain.outputs = [nbformat.v4.new_output("execute_result", data={WIDGET: {"model_id": "x"},
                                                                      "text/plain": "w"},
                                            execution_count=2)]
    nb.cells = [cell, plain]
    page = _static_copy(nb)
    assert "widgets" not in page.metadata
    assert set(page.cells[0].outputs[0]["data"]) == {"text/html", "text/plain"}
    # Without a static rendering the live view is kept rather than lose the output.
    assert WIDGET in page.cells[1].outputs[0]["data"]
    assert WIDGET in nb.cells[0].outputs[0]["data"]   # the original is untouched


def test_help(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "microscope" in capsys.readouterr().out
