"""Every widget's static rendering, in one place: what exported HTML and GitHub show
where no widget manager runs. The colours come from ``palette.json``, the file
the JS front ends import, so the two views never disagree.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

__all__ = ["PALETTE", "UI", "supervision_tree", "sequence_diagram", "time_travel", "timeline"]

_COLOURS = json.loads((Path(__file__).resolve().parent / "palette.json").read_text())
PALETTE: dict[str, str] = _COLOURS["kinds"]
UI: dict[str, str] = _COLOURS["ui"]


def supervision_tree(nodes: list[dict], limit: int = 400) -> str:
    children: dict[str | None, list[dict]] = {}
    pids = {n["pid"] for n in nodes}
    for n in nodes:
        parent = n.get("parent") if n.get("parent") in pids else None
        children.setdefault(parent, []).append(n)
    shown = [0]

    def walk(parent: str | None, depth: int) -> str:
        items = []
        for n in children.get(parent, []):
            if shown[0] >= limit:
                break
            shown[0] += 1
            colour = PALETTE.get(n.get("status"), PALETTE["alive"])
            label = html.escape(str(n.get("name") or n["pid"]))
            extra = html.escape(str(n.get("initial_call") or ""))
            weight = "600" if n.get("kind") == "supervisor" else "400"
            items.append(f'<li><span style="color:{colour}">●</span> '
                         f'<span style="font-weight:{weight}">{label}</span> '
                         f'<code style="color:{UI["muted"]}">{html.escape(n["pid"])}</code> '
                         f'<small style="color:{UI["muted"]}">{extra}</small>'
                         f'{walk(n["pid"], depth + 1)}</li>')
        return f'<ul style="list-style:none;padding-left:{0 if depth == 0 else 16}px;margin:0">' \
               f'{"".join(items)}</ul>' if items else ""

    more = "" if len(nodes) <= limit else f"<p>… {len(nodes) - limit} more</p>"
    return (f'<div style="font:12px sans-serif;max-height:360px;overflow:auto">'
            f'<b>Supervision tree</b> ({len(nodes)} processes){walk(None, 0)}{more}</div>')


def sequence_diagram(lanes_all: list[dict], m: dict, hidden: set[str],
                     row_filter: list[int] | None, max_rows: int = 150) -> str:
    lanes = [lane for lane in lanes_all if lane["id"] not in hidden]
    column = {lanes_all.index(lane): k for k, lane in enumerate(lanes)}
    allowed = None if row_filter is None else set(row_filter)
    rows = [i for i in range(len(m.get("seq", [])))
            if (allowed is None or i in allowed)
            and (m["from"][i] in column or m["to"][i] in column)]
    total = len(rows)
    rows = rows[:max_rows]
    lane_w, row_h, left, top = 150, 22, 80, 34
    width = left + max(1, len(lanes)) * lane_w
    height = top + len(rows) * row_h + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">']
    for k, lane in enumerate(lanes):
        x = left + k * lane_w
        parts.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{height}" stroke="{UI["line"]}"/>'
                     f'<text x="{x}" y="14" text-anchor="middle" font-weight="600">'
                     f'{html.escape(str(lane["label"])[:22])}</text>'
                     f'<text x="{x}" y="27" text-anchor="middle" fill="{UI["muted"]}">'
                     f'{html.escape(lane["id"])}</text>')
    labels = m.get("label") or m["text"]
    for r, i in enumerate(rows):
        y = top + r * row_h + row_h / 2
        kind = "lost" if m["status"][i] == "lost" else m["kind"][i]
        x1 = left + column[m["from"][i]] * lane_w if m["from"][i] in column else None
        x2 = left + column[m["to"][i]] * lane_w if m["to"][i] in column else None
        if x1 is None:
            x1 = x2 - 50
        if x2 is None:
            x2 = x1 + 50
        colour = PALETTE[kind]
        dash = ' stroke-dasharray="4 3"' if kind in ("reply", "lost") else ""
        parts.append(f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{colour}"'
                     f'{dash}/><circle cx="{x2}" cy="{y}" r="2.5" fill="{colour}"/>'
                     f'<text x="{min(x1, x2) + 4}" y="{y - 4}" fill="{PALETTE["info"]}">'
                     f'<title>{html.escape(m["text"][i])}</title>'
                     f'{html.escape(labels[i][:40])}</text>')
    parts.append("</svg>")
    more = "" if total <= max_rows else \
        f"<p>… {total - max_rows} more messages in the interactive view</p>"
    return (f'<div style="max-height:420px;overflow:auto"><b>Sequence diagram</b> '
            f'({total} messages)<br>{"".join(parts)}{more}</div>')


def time_travel(snapshot: list[dict], cursor: int, n_events: int, event_text: str) -> str:
    rows = "".join(
        f'<tr style="background:{UI["changed"] if r["changed"] else "none"};'
        f'color:{UI["text"] if r["alive"] else UI["dead"]}">'
        f'<td>{html.escape(r["name"] or r["pid"])}<br><code>{html.escape(r["pid"])}</code></td>'
        f'<td><code>{html.escape(r["state_text"])}</code>'
        f'<pre style="color:{UI["diff"]};margin:0">{html.escape(r["diff_text"])}</pre></td>'
        f'<td><code>{html.escape(", ".join(r["mailbox"]))}</code></td>'
        f'<td>{html.escape(r["relations"])}</td></tr>'
        for r in snapshot)
    return (f'<div style="font:12px sans-serif"><b>Time travel</b> at event {cursor} of '
            f'{n_events}: <code>{html.escape(event_text)}</code>'
            f'<table><tr><th>process</th><th>state</th><th>mailbox</th>'
            f'<th>links &amp; monitors</th></tr>{rows}</table></div>')


def timeline(lanes: list[dict], handlers: list[list], span: float) -> str:
    width, left, lane_h = 760, 160, 22
    span = span or 1.0

    def x(v: float) -> float:
        return left + v / span * (width - left - 10)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{20 + len(lanes) * lane_h}" font-family="sans-serif" font-size="11">']
    for i, lane in enumerate(lanes):
        y = 20 + i * lane_h
        end = lane["end"] if lane["end"] is not None else span
        fill = UI["lifetime_exited"] if lane["exited"] else UI["lifetime"]
        parts.append(f'<text x="4" y="{y + 12}">{html.escape(str(lane["label"])[:24])}</text>'
                     f'<rect x="{x(lane["start"]):.1f}" y="{y + 4}" '
                     f'width="{max(2, x(end) - x(lane["start"])):.1f}" height="10" rx="3" '
                     f'fill="{fill}"/>')
    for lane, start, dur in handlers[:5000]:
        parts.append(f'<rect x="{x(start):.1f}" y="{20 + lane * lane_h + 2}" '
                     f'width="{max(1, x(start + dur) - x(start)):.1f}" height="14" '
                     f'fill="{UI["handler"]}" opacity="0.5"/>')
    parts.append("</svg>")
    return f'<div><b>Timeline</b> ({len(lanes)} processes)<br>{"".join(parts)}</div>'
