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

from ..errors import MicroscopeError
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
    import nbformat
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError) as exc:
        raise MicroscopeError(f"cannot read {notebook}: {exc}") from None
    saved = nb.metadata.get("widgets", {}).get(STATE, {}).get("state", {})
    kinds: set[str] = set()
    counts = {"live": 0, "static": 0}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if VIEW not in data:
                continue
            model = saved.get(data[VIEW].get("model_id"), {}).get("state", {})
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
