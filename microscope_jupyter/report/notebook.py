"""An executed notebook as one self-contained HTML file, its widgets live.

nbconvert's HTML export loads a widget manager and anywidget from CDNs
(unpkg, jsdelivr), so a copy read offline shows empty boxes. Here each of
our widget outputs becomes a page block instead: the widget's saved state
(the notebook keeps it when executed with widget state stored, as nbclient
and JupyterLab's "Save Widget State" do) mounted by the report runtime, over
its static rendering. Every reference to a CDN is left out.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import NotebookError
from .page import assets, kind_of, widget_block

__all__ = ["report_notebook"]

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
# What nbconvert's templates fetch: MathJax, require.js, mermaid, the widget manager.
_REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>", re.I)
_REMOTE_MODULE = re.compile(r"<script type=\"module\">(?:(?!</script>).)*?https?://cdn(?:(?!</script>).)*"
                            r"</script>", re.S | re.I)
# The output wrapper nbconvert gives text/html: its table rules (cells right-
# aligned, striped rows) would restyle our widgets, which JupyterLab draws in
# a widget output instead; our blocks go without it.
_HTML_WRAPPER = re.compile(r'(<div class=")jp-RenderedHTMLCommon jp-RenderedHTML ([^"]*"[^>]*>\s*'
                           r'<div class="mic-report-widget")')
_WIDGET_LOADER = re.compile(r"<script>\s*\(function\(\)\s*{\s*function addWidgetsRenderer"
                            r"(?:(?!</script>).)*</script>", re.S)


def report_notebook(notebook: str | Path, out: str | Path | None = None) -> tuple[Path, dict]:
    """Write ``out`` (default: the notebook's name with .html) and return it with
    counts: ``{"live": n, "static": n}`` (static: widgets whose state the
    notebook did not keep, shown as their static rendering)."""
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    nb = _read_notebook(notebook)
    saved = _saved_widget_state(nb, notebook)
    kinds: set[str] = set()
    counts = {"live": 0, "static": 0}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if VIEW not in data:
                continue
            view = data[VIEW] if isinstance(data[VIEW], dict) else {}
            model_id = view.get("model_id")
            model = saved.get(model_id, {}).get("state", {}) if isinstance(model_id, str) else {}
            kind = kind_of(model.get("_anywidget_id", ""))
            static = data.get("text/html", "")
            del data[VIEW]
            if kind is None:
                counts["static"] += 1
                continue
            data["text/html"] = widget_block(kind, model, static)
            kinds.add(kind)
            counts["live"] += 1
    nb.metadata.pop("widgets", None)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    body = _REMOTE_MODULE.sub("", _REMOTE_SCRIPT.sub("", _WIDGET_LOADER.sub("", body)))
    body = _HTML_WRAPPER.sub(r"\1\2", body)
    body = body.replace("</body>", assets(kinds) + "</body>", 1)
    target = Path(out) if out else notebook.with_suffix(".html")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")
    return target, counts


def _read_notebook(path: Path):
    """The notebook as nbformat 4, validated; NotebookError, one line, when it is not one."""
    import json

    import nbformat

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NotebookError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotebookError(f"cannot read {path}: it is not JSON ({exc}); give an .ipynb "
                            "notebook") from None
    if not isinstance(raw, dict):
        raise NotebookError(f"{path} holds a JSON {type(raw).__name__}, not a notebook (an object "
                            "with cells); give an .ipynb notebook")
    version = raw.get("nbformat")
    if not isinstance(version, int) or "cells" not in raw and "worksheets" not in raw:
        raise NotebookError(f"{path} is JSON but not a Jupyter notebook (no nbformat and cells); "
                            "give an .ipynb notebook")
    if version > 4:
        raise NotebookError(f"{path} is nbformat {version}, newer than this nbformat reads; "
                            "upgrade nbformat")
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - jsonschema, KeyError, TypeError... from nbformat
        where = f"nbformat {version}, " if version < 4 else ""
        raise NotebookError(f"{path} is not a valid notebook ({where}{_first_line(exc)}); open "
                            "it in JupyterLab and save it again") from None
    return nb


def _saved_widget_state(nb, path: Path) -> dict:
    """model id -> the model's saved state ({} when the notebook kept none)."""
    widgets = nb.metadata.get("widgets", {})
    saved = widgets.get(STATE, {}) if isinstance(widgets, dict) else None
    state = saved.get("state", {}) if isinstance(saved, dict) else None
    if not isinstance(state, dict) or not all(
            isinstance(m, dict) and isinstance(m.get("state", {}), dict) for m in state.values()):
        raise NotebookError(f"{path}: the widget state in its metadata is not what Jupyter "
                            "saves; save the notebook again with its widget state (JupyterLab: "
                            "Save Widget State), or clear metadata.widgets")
    return state


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
