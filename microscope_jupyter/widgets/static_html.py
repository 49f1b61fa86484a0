"""Every widget's static rendering, in one place: what exported HTML, GitHub and
an untrusted notebook show where no widget manager runs. The colours come from
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

__all__ = ["PALETTE", "UI", "notes", "supervision_tree", "sequence_diagram", "time_travel", "timeline",
           "process_graph", "source_view"]

_COLOURS = json.loads((Path(__file__).resolve().parent / "palette.json").read_text())
PALETTE: dict[str, str] = _COLOURS["kinds"]
UI: dict[str, str] = _COLOURS["ui"]


def notes(items: list[dict]) -> str:
    """The recording's annotations under a widget ('' when there are none)."""
    if not items:
        return ""
    rows = "".join(
        f'<div class="mic-static-note" style="border-left:3px solid {UI["note"]};padding:1px 6px;'
        f'margin:2px 0">✎ {html.escape(n["text"])} <span style="color:{UI["muted"]}">— '
        f'{html.escape(n["author"])} · {html.escape(n["target"])}</span></div>' for n in items)
    return f'<div style="font:12px sans-serif;margin-top:4px">{rows}</div>'


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


def _badge(text: str, colour: str) -> str:
    return (f'<span style="background-color:{colour};color:#ffffff;padding:0 5px;'
            f'border-radius:3px;font-size:11px">{html.escape(text)}</span>')


def sequence_diagram(lanes_all: list[dict], m: dict, hidden: set[str],
                     row_filter: list[int] | None, max_rows: int = 150,
                     crashes: list[dict] = ()) -> str:
    """One row per message: sender, arrow (kind colour, label), receiver, what happened;
    exits between the rows they follow (crashes in red)."""
    lanes = [lane for lane in lanes_all if lane["id"] not in hidden]
    visible = {lanes_all.index(lane) for lane in lanes}
    allowed = None if row_filter is None else set(row_filter)
    rows = [i for i in range(len(m.get("seq", [])))
            if (allowed is None or i in allowed)
            and (m["from"][i] in visible or m["to"][i] in visible)]
    total = len(rows)
    rows = rows[:max_rows]
    labels = m.get("label") or m["text"]
    waits = m.get("wait_us") or [None] * len(m["seq"])
    name = lambda k: html.escape(str(lanes_all[k]["label"])) if 0 <= k < len(lanes_all) else "?"  # noqa: E731
    exits_after: dict[int, list[dict]] = {}
    for c in crashes:
        exits_after.setdefault(c["row"], []).append(c)
    base = f"padding:1px 6px;border-bottom:1px solid {UI['line']};white-space:nowrap"
    cell = f'style="{base}"'
    out = []

    def exit_rows(row: int) -> None:
        for c in exits_after.get(row, []):
            colour = PALETTE["crash"] if c.get("abnormal", True) else UI["muted"]
            what = "✖ crashed" if c.get("abnormal", True) else "■ exited"
            out.append(f'<tr><td {cell}></td><td style="{base};color:{colour}" colspan="4">'
                       f'<b>{name(c["lane"])} {what}</b>: <code>{html.escape(c["text"][:160])}</code>'
                       f'</td></tr>')

    exit_rows(-1)
    for i in rows:
        kind = "lost" if m["status"][i] == "lost" else (m["kind"][i] or "info")
        colour = PALETTE.get(kind, PALETTE["info"])
        wait = waits[i] if waits[i] is not None else m["latency_us"][i]
        took = "" if wait is None else (f"{wait / 1000:.1f} ms" if wait >= 1000 else f"{wait:.0f} µs")
        arrow = "╌╌✕" if kind == "lost" else "──▶"
        out.append(
            f'<tr><td {cell}><small style="color:{UI["muted"]}">#{m["seq"][i]}</small></td>'
            f'<td style="{base};text-align:right">{name(m["from"][i])}</td>'
            f'<td style="{base};color:{colour}" title="{html.escape(m["text"][i][:300])}">'
            f'<span style="color:{colour}">{arrow}</span> <code>{html.escape(labels[i][:60])}</code></td>'
            f'<td {cell}>{name(m["to"][i])}</td>'
            f'<td {cell}>{_badge(m["status"][i], colour) if kind == "lost" else html.escape(m["status"][i])}'
            f' <small style="color:{UI["muted"]}">{took}</small></td></tr>')
        exit_rows(i)
    legend = " ".join(_badge(k, PALETTE[k]) for k in ("call", "reply", "cast", "info", "lost"))
    more = "" if total <= max_rows else \
        f"<p>… {total - max_rows} more messages in the interactive view</p>"
    return (f'<div style="max-height:420px;overflow-y:auto;font-family:sans-serif;font-size:12px">'
            f'<b>Sequence diagram</b> ({total} messages, {len(lanes)} processes) {legend}'
            f'<table style="border-collapse:collapse">{"".join(out)}</table>{more}</div>')


def time_travel(snapshot: list[dict], cursor: int, n_events: int, event_text: str) -> str:
    rows = "".join(
        f'<tr style="background:{UI["changed"] if r["changed"] else "none"};'
        f'color:{UI["text"] if r["alive"] else UI["dead"]}">'
        f'<td>{html.escape(r["name"] or r["pid"])}<br><code>{html.escape(r["pid"])}</code></td>'
        f'<td><code>{html.escape(r["state_text"])}</code>'
        f'<pre style="color:{UI["diff"]};margin:0">{html.escape(r["diff_text"])}</pre>'
        + (f'<i style="color:{UI["muted"]}">⟵ {html.escape(r["line"])}</i>' if r.get("line") else "")
        + '</td>'
        f'<td><code>{_mailbox_cell(r)}</code></td>'
        f'<td>{html.escape(r["relations"])}</td></tr>'
        for r in snapshot)
    return (f'<div style="font:12px sans-serif"><b>Time travel</b> at event {cursor} of '
            f'{n_events}: <code>{html.escape(event_text)}</code>'
            f'<table><tr><th>process</th><th>state</th><th>mailbox</th>'
            f'<th>links &amp; monitors</th></tr>{rows}</table></div>')


def timeline(lanes: list[dict], handlers: list[list], span: float,
             callbacks: list[str] = (), max_bars: int = 3000) -> str:
    """A track per process: its life, its callbacks, its end (a crash in red), on a shared axis."""
    span = span or 1.0
    pct = lambda v: f"{max(0.0, min(100.0, v / span * 100)):.3f}%"  # noqa: E731
    per_lane: dict[int, list[list]] = {}
    for bar in handlers[:max_bars]:
        per_lane.setdefault(bar[0], []).append(bar)
    busy = {k: sum(b[2] for b in bars) for k, bars in per_lane.items()}
    rows = []
    for k, lane in enumerate(lanes):
        start, end = lane["start"] or 0.0, lane["end"] if lane["end"] is not None else span
        life = UI["lifetime_exited"] if lane.get("abnormal") else UI["lifetime"]
        bars = "".join(
            f'<div style="position:absolute;left:{pct(b[1])};width:{pct(max(b[2], span / 1000))};'
            f'top:2px;height:10px;background-color:{UI["handler"]};opacity:0.6"></div>'
            for b in per_lane.get(k, []))
        end_mark = ""
        if lane.get("exited"):
            colour = PALETTE["crash"] if lane.get("abnormal") else UI["muted"]
            end_mark = (f'<div style="position:absolute;left:{pct(end)};top:-2px;color:{colour};'
                        f'font-size:12px;font-weight:bold">{"✖" if lane.get("abnormal") else "|"}</div>')
        reason = (f' <small style="color:{PALETTE["crash"]}">{html.escape(lane.get("reason", "")[:60])}</small>'
                  if lane.get("abnormal") else "")
        rows.append(
            f'<tr><td style="padding:1px 6px;white-space:nowrap">{html.escape(str(lane["label"])[:30])}'
            f'{reason}</td><td style="padding:1px 0;min-width:480px">'
            f'<div style="position:relative;height:14px;background-color:{UI["panel"]}">'
            f'<div style="position:absolute;left:{pct(start)};width:{pct(end - start)};top:5px;'
            f'height:4px;background-color:{life}"></div>{bars}{end_mark}</div></td>'
            f'<td style="padding:1px 6px;white-space:nowrap"><small>{busy.get(k, 0):.1f} ms busy</small>'
            f'</td></tr>')
    legend = (f'{_badge("callback", UI["handler"])} {_badge("alive", UI["lifetime"])} '
              f'<span style="color:{PALETTE["crash"]}">✖ crash</span>')
    return (f'<div style="font-family:sans-serif;font-size:12px;max-height:420px;overflow-y:auto">'
            f'<b>Timeline</b> ({len(lanes)} processes over {span:.1f} ms) {legend}'
            f'<table style="border-collapse:collapse"><tr><td></td><td style="padding:0">'
            f'<small>0 ms</small><small style="float:right">{span:.1f} ms</small></td><td></td></tr>'
            f'{"".join(rows)}</table></div>')


def process_graph(nodes: list[dict], edges: list[dict], path: list[dict]) -> str:
    """The flows as a table (busiest first), and the causal chain when one is focused."""
    label = lambda k: html.escape(str(nodes[k]["label"])) if 0 <= k < len(nodes) else "?"  # noqa: E731
    wait = lambda us: "" if us is None else (f"{us / 1000:.1f} ms" if us >= 1000 else f"{us:.0f} µs")  # noqa: E731
    cell = f"padding:1px 6px;border-bottom:1px solid {UI['line']};white-space:nowrap"
    rows = "".join(
        f'<tr><td style="{cell};text-align:right">{label(e["from"])}</td><td style="{cell}">→</td>'
        f'<td style="{cell}">{label(e["to"])}</td><td style="{cell};text-align:right">{e["count"]}</td>'
        f'<td style="{cell}">{wait(e["median_us"])}</td><td style="{cell}">{wait(e["max_us"])}</td></tr>'
        for e in sorted(edges, key=lambda e: -e["count"])[:60])
    chain = "".join(
        f'<li style="color:{PALETTE["crash"] if p["slowest"] else UI["text"]}">{label(p["from"])} → '
        f'{label(p["to"])} <code>{html.escape(p["text"])}</code> {wait(p["wait_us"])}'
        f'{" ← the longest wait" if p["slowest"] else ""}</li>' for p in path)
    crashed = ", ".join(label(k) for k, n in enumerate(nodes) if n.get("crashed"))
    return (f'<div style="font-family:sans-serif;font-size:12px;max-height:420px;overflow-y:auto">'
            f'<b>Process graph</b> ({len(nodes)} processes, {len(edges)} flows)'
            + (f' <span style="color:{PALETTE["crash"]}">✖ crashed: {crashed}</span>' if crashed else "")
            + f'<table style="border-collapse:collapse"><tr><th style="{cell}">from</th><th></th>'
            f'<th style="{cell}">to</th><th style="{cell}">messages</th><th style="{cell}">median wait</th>'
            f'<th style="{cell}">longest</th></tr>{rows}</table>'
            + (f"<b>Causal chain</b><ol>{chain}</ol>" if chain else "") + "</div>")


def source_view(module: str, path: str, lines: list[str], line: int, note: str, what: str,
                snapshots: dict[str, str] | None = None) -> str:
    """The lines around the one shown, that one marked; inspect_line bindings after their lines."""
    lo, hi = max(1, line - 8), min(len(lines), (line or 1) + 12)
    snaps = snapshots or {}
    body = "".join(
        f'<div style="white-space:pre;background-color:{UI["changed"] if n == line else "transparent"}">'
        f'<span style="color:{UI["muted"]}">{n:5} </span>{html.escape(lines[n - 1])}'
        + (f'<i style="color:{UI["diff"]}">  ⟵ {html.escape(snaps[str(n)])}</i>'
           if str(n) in snaps else "") + '</div>'
        for n in range(lo, hi + 1))
    return (f'<div style="font-family:sans-serif;font-size:12px"><b>{html.escape(module)}</b> '
            f'<code>{html.escape(path)}</code> {html.escape(what)}'
            + (f'<div style="color:{UI["muted"]}">{html.escape(note)}</div>' if note else "")
            + f'<div style="font-family:monospace;font-size:12px">{body}</div></div>')


def _mailbox_cell(r: dict) -> str:
    """The queued messages, counted: "≈" where the count is an estimate between
    the node's own samples (its derivation in the title)."""
    if not r.get("mailbox_len"):
        return html.escape(", ".join(r["mailbox"]))
    basis = r.get("mailbox_basis") or "node"
    mark = "" if basis == "node" else "≈"
    return (f'<span title="{html.escape(basis)}">{mark}{int(r["mailbox_len"])}</span>: '
            + html.escape(", ".join(r["mailbox"])))
