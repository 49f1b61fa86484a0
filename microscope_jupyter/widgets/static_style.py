"""What every widget's static rendering shares: the colours, the badge, the
notes. Each widget renders its own static view beside itself
(``static_rendering`` in its module): what exported HTML, GitHub and an
untrusted notebook show where no widget manager runs. The colours come from
``palette.json``, the file the JS front ends import, so the two views never
disagree.

Plain HTML with inline styles only: JupyterLab sanitises the HTML of an
untrusted notebook, and its sanitiser removes SVG (leaving its text as
garble) and ``data:`` image URLs, but keeps tables, divs and these styles.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

__all__ = ["PALETTE", "UI", "LEGEND", "notes", "badge", "legend"]

_COLOURS = json.loads((Path(__file__).resolve().parent / "palette.json").read_text())
PALETTE: dict[str, str] = _COLOURS["kinds"]
UI: dict[str, str] = _COLOURS["ui"]
LEGEND: dict[str, dict] = _COLOURS["legend"]


def legend(keys: list[str]) -> str:
    """The key a widget shows, in the vocabulary every widget shares (palette.json)."""
    def colour(key: str) -> str:
        name = LEGEND[key]["colour"]
        return UI["text"] if key == "info" else PALETTE.get(name) or UI[name]
    return '<div style="font-size:11px;color:{}">{}</div>'.format(UI["muted"], " ".join(
        f'<span style="margin-right:10px;white-space:nowrap"><b style="color:{colour(k)}">'
        f'{html.escape(LEGEND[k]["mark"])}</b> {html.escape(LEGEND[k]["text"])}</span>'
        for k in keys))


def notes(items: list[dict]) -> str:
    """The recording's annotations under a widget ('' when there are none)."""
    if not items:
        return ""
    rows = "".join(
        f'<div class="mic-static-note" style="border-left:3px solid {UI["note"]};padding:1px 6px;'
        f'margin:2px 0">✎ {html.escape(n["text"])} <span style="color:{UI["muted"]}">— '
        f'{html.escape(n["author"])} · {html.escape(n["target"])}</span></div>' for n in items)
    return f'<div style="font:12px sans-serif;margin-top:4px">{rows}</div>'


def badge(text: str, colour: str) -> str:
    return (f'<span style="background-color:{colour};color:#ffffff;padding:0 5px;'
            f'border-radius:3px;font-size:11px">{html.escape(text)}</span>')
