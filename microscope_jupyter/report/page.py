"""One self-contained HTML page: text sections, and widgets that run offline.

    block = widget_block(widget)                  # live where scripts run, static where not
    html = page("Incident 481", [section, block], kinds={"time_travel"})

Each widget kind's bundle (the same file JupyterLab loads) is inlined once,
with a small runtime (``js/src/report_runtime.js``) that mounts it against a
model living in the page. Nothing is fetched: no CDN, no kernel.
"""

from __future__ import annotations

import html
import itertools
import json
import math
from typing import Any

from ..widgets import bundle_source

__all__ = ["widget_block", "widget_state", "page", "assets", "kind_of"]

_IDS = itertools.count(1)

# Synced traits a page model does not need: the bundle (inlined once per
# kind), and ipywidgets' bookkeeping.
_SKIP = {"_esm", "_css", "_dom_classes", "_model_module", "_model_module_version", "_model_name",
         "_view_count", "_view_module", "_view_module_version", "_view_name", "layout",
         "tabbable", "tooltip", "_anywidget_id"}


def kind_of(anywidget_id: str) -> str | None:
    """``microscope_jupyter.widgets.time_travel.TimeTravel`` -> ``time_travel``;
    None for a widget that is not ours."""
    parts = str(anywidget_id).split(".")
    if len(parts) >= 3 and parts[0] == "microscope_jupyter" and parts[1] == "widgets":
        return parts[2]
    return None


def widget_state(state: dict) -> dict:
    return {k: v for k, v in state.items() if k not in _SKIP}


def widget_block(kind: str, state: dict, static_html: str) -> str:
    """A widget's place in the page: its static rendering (what shows where
    scripts are blocked), replaced by the live widget when the runtime runs.
    A time travel's slider moves through its kept frames; with none, it
    stays at the one moment the state holds."""
    ident = f"mic-w{next(_IDS)}"
    state = widget_state(state)
    frames = state.pop("frames", None) or None
    if frames is None and kind == "time_travel" and "cursor" in state:
        frames = {"trait": "cursor", "values": {str(state["cursor"]): {
            "snapshot": state.get("snapshot", []), "event_text": state.get("event_text", "")}}}
    data = {"state": state, "frames": frames}
    return (f'<div class="mic-report-widget" data-kind="{html.escape(kind)}" data-state="{ident}">'
            f'<div class="mic-static">{static_html}</div></div>'
            f'<script type="application/json" id="{ident}">{_json(data)}</script>')


def page(title: str, parts: list[str], kinds: set[str], head: str = "") -> str:
    """The whole document: ``parts`` (HTML) in order, each widget kind's bundle once."""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style>{head}</head><body><main>"
        + "".join(parts) + "</main>" + assets(kinds) + "</body></html>\n")


def assets(kinds: set[str]) -> str:
    """Each widget kind's bundle once, and the runtime that mounts them ('' for none)."""
    if not kinds:
        return ""
    bundles = "".join(
        f'<script type="application/json" class="mic-bundle" data-kind="{html.escape(k)}">'
        f"{_json(bundle_source(k))}</script>" for k in sorted(kinds))
    return bundles + f'<script type="module">{_script(bundle_source("report_runtime"))}</script>'


def _json(value: Any) -> str:
    """JSON that cannot end its <script> element early; NaN and infinities as
    null (JSON has none, and JSON.parse would refuse the whole state)."""
    text = json.dumps(_finite(value), default=str, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _script(source: str) -> str:
    return source.replace("</script", "<\\/script")


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #202124;
       margin: 0; background: #fff; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px;
     border-bottom: 1px solid #dadce0; padding-bottom: 4px; }
.meta { color: #5f6368; font-size: 13px; }
table.mic-table { border-collapse: collapse; width: 100%; font-size: 13px; }
table.mic-table th, table.mic-table td { border-bottom: 1px solid #eceff1; padding: 4px 8px;
     text-align: left; vertical-align: top; }
table.mic-table th { background: #f8f9fa; }
.sev-error { color: #d93025; font-weight: 600; } .sev-warning { color: #b06000; font-weight: 600; }
.mic-note { border-left: 3px solid #8e5bd6; background: #f7f2fd; padding: 6px 10px; margin: 6px 0; }
.mic-note .who { color: #5f6368; font-size: 12px; }
.mic-report-widget { margin: 8px 0 20px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
"""
