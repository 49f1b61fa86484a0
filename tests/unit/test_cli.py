"""The command line: `microscope report` turns every widget output of an
executed notebook into its live, self-contained form."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from microscope_jupyter.cli import main
from microscope_jupyter.widgets import bundle_source

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"


def notebook_with_widgets(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {STATE: {"version_major": 2, "version_minor": 0, "state": {
        "tt": {"model_name": "AnyModel", "model_module": "anywidget", "state": {
            "_anywidget_id": "microscope_jupyter.widgets.time_travel.TimeTravel",
            "_esm": "export default {}", "cursor": 3, "n_events": 9, "snapshot": [],
            "notes": [{"id": 1, "seq": 3, "end_seq": 3, "text": "look here", "author": "ana",
                       "target": "event #3 (send)", "pid": None}]}},
        "other": {"model_name": "IntSliderModel", "model_module": "@jupyter-widgets/controls",
                  "state": {"value": 4}}}}}
    ours = nbformat.v4.new_code_cell("TimeTravel(s)")
    ours.outputs = [nbformat.v4.new_output("execute_result", data={
        VIEW: {"model_id": "tt", "version_major": 2, "version_minor": 0},
        "text/html": "<b>static time travel</b>", "text/plain": "<TimeTravel>"},
        execution_count=1)]
    theirs = nbformat.v4.new_code_cell("IntSlider()")
    theirs.outputs = [nbformat.v4.new_output("execute_result", data={
        VIEW: {"model_id": "other", "version_major": 2, "version_minor": 0},
        "text/plain": "IntSlider(value=4)"}, execution_count=2)]
    nb.cells = [nbformat.v4.new_markdown_cell("# Incident $x^2$"), ours, theirs]
    path = tmp_path / "incident.ipynb"
    nbformat.write(nb, path)
    return path


def test_report_inlines_our_widgets_and_fetches_nothing(tmp_path, capsys):
    path = notebook_with_widgets(tmp_path)
    assert main(["report", str(path)]) == 0
    assert "1 widget(s) live, 1 static" in capsys.readouterr().out
    page = path.with_suffix(".html").read_text()
    # our widget: its saved state (the bundle not repeated in it) over its static rendering
    assert 'data-kind="time_travel"' in page and "<b>static time travel</b>" in page
    wrapper = page[:page.index('<div class="mic-report-widget"')].rsplit("<div ", 1)[1]
    assert "jp-RenderedHTMLCommon" not in wrapper, wrapper   # its table rules are not ours
    found = re.search(r'<script (?=[^>]*id="mic-w\d+")[^>]*>(.*?)</script>', page, re.S)
    data = json.loads(found.group(1))
    state = data["state"]
    assert state["cursor"] == 3 and state["notes"][0]["text"] == "look here"
    assert "_esm" not in state and "_anywidget_id" not in state
    # no frames kept: the slider stays at the one moment the notebook saved
    assert list(data["frames"]["values"]) == ["3"]
    # the bundle once, the runtime once; no CDN, no widget manager, no MathJax
    assert page.count('class="mic-bundle"') == 1
    assert json.dumps(bundle_source("time_travel"))[:200].replace("</", "<\\/") in page
    assert "https://" not in page.split("<body")[1].split("mic-bundle")[0]
    for remote in ("unpkg.com", "cdn.jsdelivr.net", "embed-amd", "mathjax@", "MathJax.js"):
        assert remote not in page, remote
    assert "IntSlider(value=4)" in page   # a widget not ours keeps its text


def test_report_of_a_missing_notebook_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.ipynb")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("microscope: cannot read") and "\n" not in err


def test_help(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "microscope" in capsys.readouterr().out


def test_version(capsys):
    import tomllib
    from pathlib import Path

    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert capsys.readouterr().out == f"microscope {pyproject['project']['version']}\n"


def _write(path, text):
    path.write_text(text)
    return path


def _notebook(tmp_path, change):
    nb = json.loads(nbformat.writes(nbformat.v4.new_notebook()))
    change(nb)
    return _write(tmp_path / "x.ipynb", json.dumps(nb))


def _bad_widget_state(nb):
    nb["metadata"]["widgets"] = {STATE: {"state": "garbage"}}
    nb["cells"] = [nbformat.v4.new_code_cell("w")]
    nb["cells"][0]["outputs"] = [{"output_type": "execute_result", "execution_count": 1,
                                  "metadata": {}, "data": {VIEW: {"model_id": "m"},
                                                           "text/plain": "w"}}]
    nb["cells"][0]["id"] = "c1"


V3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {},
      "worksheets": [{"cells": [{"cell_type": "code", "input": 1}]}]}


@pytest.mark.parametrize("make, message", [
    (lambda t: _write(t / "x.ipynb", '{"cells_are_missing": true}'),
     "x.ipynb is JSON but not a Jupyter notebook (no nbformat and cells)"),
    (lambda t: _write(t / "x.ipynb", "[1, 2]"), "x.ipynb holds a JSON list, not a notebook"),
    (lambda t: _write(t / "x.ipynb", "{nope"), "x.ipynb: it is not JSON ("),
    (lambda t: _notebook(t, _bad_widget_state),
     "x.ipynb: the widget state in its metadata is not what Jupyter saves"),
    (lambda t: _notebook(t, lambda nb: nb["cells"].append({"cell_type": "code", "source": 5})),
     "x.ipynb is not a valid notebook ("),
    (lambda t: _write(t / "x.ipynb", json.dumps(V3)), "x.ipynb is not a valid notebook (nbformat 3,"),
])
def test_report_of_what_is_not_a_notebook_is_one_line(tmp_path, capsys, make, message):
    assert main(["report", str(make(tmp_path))]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("microscope: ") and message in err, err
    assert "\n" not in err and "Traceback" not in captured.out + captured.err


def test_mcp_over_stdio_knows_no_notebook_can_approve(monkeypatch, tmp_path):
    """`microscope mcp` builds its assistant with notebook=False, so a proposal nobody can
    approve says so (tests/unit/test_assistant_tools.py), and with the save folder given."""
    pytest.importorskip("mcp")
    import microscope_jupyter.assistant as assistant_package
    import microscope_jupyter.cli as cli

    built = {}

    class Server:
        def run(self, transport):
            built["transport"] = transport

    class Session:
        node = "app@host"

        def detach(self):
            built["detached"] = True

    monkeypatch.setattr(cli, "attach", lambda node, cookie=None, **options: Session())
    monkeypatch.setattr(assistant_package, "build_server",
                        lambda assistant: built.setdefault("assistant", assistant) and Server())
    assert main(["mcp", "--node", "app@host", "--save-dir", str(tmp_path)]) == 0
    assistant = built["assistant"]
    assert assistant.notebook is False and assistant.ceilings is None
    assert assistant.save_dir == tmp_path.resolve() and assistant.allow_save is False
    assert built["transport"] == "stdio" and built["detached"]


def test_mcp_allow_trace_sets_the_ceilings_the_flags_give(monkeypatch):
    """--allow-trace: Ceilings from the --max-* flags, ASSISTANT_CEILINGS where none is given."""
    pytest.importorskip("mcp")
    import microscope_jupyter.assistant as assistant_package
    import microscope_jupyter.cli as cli
    from microscope_jupyter.agent.options import ASSISTANT_CEILINGS
    from microscope_jupyter.assistant import Ceilings

    built = {}

    class Server:
        def run(self, transport):
            pass

    class Session:
        node = "app@host"

        def detach(self):
            pass

    monkeypatch.setattr(cli, "attach", lambda node, cookie=None, **options: Session())
    monkeypatch.setattr(assistant_package, "build_server",
                        lambda assistant: built.setdefault("assistant", assistant) and Server())
    assert main(["mcp", "--node", "app@host", "--allow-trace", "--max-duration", "2",
                 "--max-payload", "512"]) == 0
    ceilings = built["assistant"].ceilings
    assert ceilings == Ceilings(duration_s=2.0, payload_limit=512)
    assert ceilings.max_rate == ASSISTANT_CEILINGS.max_rate
