"""Metrics: per process over time, as one tidy table, and a dashboard of them.

    s.metrics()                 # ts, seq, pid, name, metric, value, detail
    s.dashboard(["mic_worker"]) # plotly: mailbox length, callback latency by
                                # message shape, GC pauses; findings marked

Metrics: ``mailbox_len`` (the node's own sampled message_queue_len),
``memory_bytes``, ``heap_words`` and ``reductions_per_s`` (sampled with it,
whenever the process had run), ``binary_bytes`` (the refc binaries it
references, off its heap: read at most once a second), ``callback_ms`` (each callback's duration;
detail: callback and message shape), ``gc_ms`` (long garbage collections
from the system monitor), ``events_per_s`` (events per 100 ms window,
per process) and ``calls`` (a flight recorder's counters level: a function's
calls since the last sample; detail: the function).

The figure shows in JupyterLab and in an exported HTML file with no
network: plotly.js is inlined into the first dashboard a kernel shows and
reused by the ones after it.
"""

from __future__ import annotations

import base64
import html as _html

from typing import Any

import numpy as np
import pandas as pd

from .detector_kit import BINARY_BYTES, HEAP_WORDS, REDUCTIONS, message_shape
from .causes import find_causes
from .facts import Facts
from .findings import findings_table


__all__ = ["metrics", "Dashboard", "METRIC_COLUMNS"]

METRIC_COLUMNS = ["ts", "seq", "pid", "name", "metric", "value", "detail"]
_WINDOW = "100ms"


def metrics(facts: Facts) -> pd.DataFrame:
    events = facts.store.frame()
    parts = []
    mailbox = events[events["kind"] == "mailbox"]
    parts.append(_rows(mailbox, "mailbox_len", mailbox["_count"].astype(float), None))
    parts += _vitals(events[events["kind"] == "vitals"])
    states = facts.states()
    if len(states):
        parts.append(pd.DataFrame({
            "ts": states["ts"], "seq": states["seq"], "pid": states["pid"],
            "name": states["name"], "metric": "callback_ms",
            "value": states["duration_us"] / 1000.0,
            "detail": [f"{c} of {message_shape(m)}" for c, m in zip(states["callback"],
                                                                   states["message"])]}))
    gcs = events[events["kind"] == "long_gc"]
    parts.append(_rows(gcs, "gc_ms", gcs["_duration_ns"] / 1e6, None))
    counted = events[events["kind"] == "call_count"]
    parts.append(_rows(counted, "calls", counted["_count"].astype(float), counted["mfa"].to_numpy()))
    acting = events[events["pid"].notna()]
    if len(acting):
        rate = (acting.set_index("ts").groupby(["pid", pd.Grouper(freq=_WINDOW)])["seq"]
                .agg(["count", "min"]).reset_index())
        names = acting.dropna(subset=["name"]).groupby("pid")["name"].last()
        parts.append(pd.DataFrame({
            "ts": rate["ts"], "seq": rate["min"], "pid": rate["pid"],
            "name": rate["pid"].map(names), "metric": "events_per_s",
            "value": rate["count"] * 10.0, "detail": None}))
    table = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(
        len(p) for p in parts) else pd.DataFrame(columns=METRIC_COLUMNS)
    table = table[METRIC_COLUMNS]
    table["name"] = table["name"].astype(object).where(table["name"].notna(), None)
    return table.sort_values(["ts", "seq"], kind="stable").reset_index(drop=True)


def _vitals(vitals: pd.DataFrame) -> list[pd.DataFrame]:
    """Memory, heap and refc binary bytes as sampled (binaries only on the
    samples that read them); reductions as a rate between samples."""
    if not len(vitals):
        return []
    terms = list(vitals["term"])
    heap = np.array([t[HEAP_WORDS] if isinstance(t, dict) else np.nan for t in terms], dtype=float)
    total = np.array([t[REDUCTIONS] if isinstance(t, dict) else np.nan for t in terms],
                     dtype=float)
    # The rate over the span since the process's previous sample; its
    # first sample has no span and no rate.
    by_pid = vitals.groupby("pid", sort=False)
    seconds = by_pid["ts"].diff().dt.total_seconds().to_numpy()
    done = pd.Series(total, index=vitals.index).groupby(vitals["pid"], sort=False).diff()
    rate = done.to_numpy() / np.where(seconds > 0, seconds, np.nan)
    measured = ~np.isnan(rate)
    binary = np.array([t.get(BINARY_BYTES, np.nan) if isinstance(t, dict) else np.nan
                       for t in terms], dtype=float)
    read = ~np.isnan(binary)
    return [_rows(vitals, "memory_bytes", vitals["_aux"].astype(float), None),
            _rows(vitals, "heap_words", pd.Series(heap, index=vitals.index), None),
            _rows(vitals[measured], "reductions_per_s",
                  pd.Series(rate[measured], index=vitals.index[measured]), None),
            _rows(vitals[read], "binary_bytes",
                  pd.Series(binary[read], index=vitals.index[read]), None)]


def _rows(rows: pd.DataFrame, metric: str, values: pd.Series, detail: Any) -> pd.DataFrame:
    return pd.DataFrame({"ts": rows["ts"], "seq": rows["seq"], "pid": rows["pid"],
                         "name": rows["name"], "metric": metric,
                         "value": values.to_numpy(dtype=float), "detail": detail})


SPARSE_SAMPLES = 20    # a mailbox series with fewer samples draws each one


# JupyterLab's theme, read from its CSS variables (none outside JupyterLab:
# plotly's own colours stay), at once and after a switch's stylesheet lands.
_FOLLOW_THEME = (
    "var box = s.parentElement, still = box.querySelector('.mic-dashboard-still');"
    " if (still) still.remove();"
    " var plot = box.querySelector('.js-plotly-plot'); if (!plot) return;"
    " function paint() { var css = getComputedStyle(document.body),"
    " v = function (n) { return css.getPropertyValue(n).trim(); },"
    " bg = v('--jp-layout-color0'), fg = v('--jp-ui-font-color1'), grid = v('--jp-border-color2');"
    " if (!bg || !window.Plotly || !plot.layout) return;"
    " var u = {paper_bgcolor: bg, plot_bgcolor: bg, 'font.color': fg};"
    " Object.keys(plot.layout).forEach(function (k) { if (/^[xy]axis/.test(k)) {"
    " u[k + '.gridcolor'] = grid; u[k + '.zerolinecolor'] = grid; u[k + '.linecolor'] = grid; } });"
    " window.Plotly.relayout(plot, u); }"
    " function soon() { paint(); setTimeout(paint, 400); }"
    " setTimeout(soon, 0);"
    " var mo = new MutationObserver(function () { if (!plot.isConnected) return mo.disconnect();"
    " soon(); }); mo.observe(document.body, {attributes: true,"
    " attributeFilter: ['data-jp-theme-light', 'data-jp-theme-name']});")


class Dashboard:
    """A plotly figure of a recording's metrics (``.figure``), shown offline.

    Its HTML carries a still picture of the figure first (SVG, rendered in
    the kernel by plotly's own exporter, kaleido, through the Chrome or
    Chromium on the machine), and the interactive figure after it, whose
    script removes the picture. Where scripts do not run (an untrusted
    notebook, a GitHub preview) the picture stays; where no browser is found,
    one line says so instead."""

    _plotly_shown = False   # plotly.js goes into the first dashboard a kernel shows

    def __init__(self, figure: Any):
        self.figure = figure

    def _repr_html_(self) -> str:
        first = not Dashboard._plotly_shown
        Dashboard._plotly_shown = True
        html = self.figure.to_html(full_html=False, include_plotlyjs=first,
                                   config={"displaylogo": False})
        # the script runs only where the figure draws: it takes the still picture away,
        # and paints the figure in the notebook's theme, again whenever it changes
        html = (f'<div class="mic-dashboard">{self.still()}{html}<script>'
                f"(function (s) {{ {_FOLLOW_THEME} }})(document.currentScript);</script></div>")
        if not first:
            return html
        # plotly.js registers itself with an AMD loader when it finds one (an
        # exported notebook loads require.js) instead of setting window.Plotly,
        # which the figures use: hide the loader while it runs.
        return ("<script>window.__micDefine = window.define; window.define = undefined;</script>"
                + html.replace("</script>", "</script><script>window.define = window.__micDefine;"
                               "</script>", 1))

    def still(self) -> str:
        """The figure as a still SVG picture in an ``<img>``, or one line saying why not."""
        try:
            svg = self.figure.to_image(format="svg")
        except Exception as exc:  # noqa: BLE001 - no picture is no reason to lose the figure
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            return (f'<p class="mic-dashboard-still">(no still picture of this dashboard: '
                    f"{_html.escape(reason)}; it needs kaleido and a Chrome or Chromium)</p>")
        data = base64.b64encode(svg).decode("ascii")
        return (f'<img class="mic-dashboard-still" alt="metrics dashboard (a still picture)" '
                f'style="max-width:100%" src="data:image/svg+xml;base64,{data}">')


def dashboard(facts: Facts, procs: list[str] | None = None) -> Dashboard:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    table = metrics(facts)
    who = table["name"].where(table["name"].notna(), table["pid"])
    if procs is not None:
        table = table[who.isin([str(p) for p in procs]) | table["pid"].isin(
            [str(p) for p in procs])]
        who = who[table.index]
    figure = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                           subplot_titles=("mailbox length (the node's count)",
                                           "callback latency (ms), by message shape",
                                           "GC pauses (ms)", "process memory (KB)"))
    for name, rows in table[table["metric"] == "mailbox_len"].groupby(who, sort=True):
        # a series of few samples draws its points and says how few (a flat line
        # then a jump hides that nothing was read in between)
        few = len(rows) < SPARSE_SAMPLES
        figure.add_trace(go.Scatter(x=rows["ts"], y=rows["value"],
                                    mode="lines+markers" if few else "lines", line_shape="hv",
                                    name=f"{name} mailbox" + (f" ({len(rows)} samples)"
                                                              if few else "")), row=1, col=1)
    callbacks = table[table["metric"] == "callback_ms"]
    for (name, detail), rows in callbacks.groupby([who[callbacks.index], "detail"], sort=True):
        figure.add_trace(go.Scatter(x=rows["ts"], y=rows["value"], mode="markers",
                                    marker={"size": 5}, name=f"{name}: {detail}",
                                    customdata=rows["seq"],
                                    hovertemplate="seq %{customdata}<br>%{y:.2f} ms"),
                         row=2, col=1)
    gcs = table[table["metric"] == "gc_ms"]
    for name, rows in gcs.groupby(who[gcs.index], sort=True):
        figure.add_trace(go.Bar(x=rows["ts"], y=rows["value"], name=f"{name} GC"), row=3, col=1)
    if not len(gcs):
        figure.add_annotation(text="no long garbage collection in the recording (the node's "
                                   "system monitor reports those over long_gc_ms)",
                              showarrow=False, xref="x3 domain", yref="y3 domain", x=0.5, y=0.5,
                              font={"size": 11, "color": "#888"})
    for name, rows in table[table["metric"] == "memory_bytes"].groupby(who, sort=True):
        figure.add_trace(go.Scatter(x=rows["ts"], y=rows["value"] / 1024, mode="lines",
                                    line_shape="hv", name=f"{name} memory"), row=4, col=1)
    events = facts.store.frame()
    for finding in findings_table(facts).itertuples(index=False):
        if finding.severity in ("error", "warning") and 0 <= finding.first_seq < len(events):
            figure.add_vline(x=events["ts"].iloc[finding.first_seq], line_dash="dot",
                             line_color="#c0392b", opacity=0.5)
    # Each cause (s.explain's chains) where its evidence begins, named on the line.
    for cause in find_causes(facts):
        first = min((s for s in cause.evidence if 0 <= s < len(events)), default=None)
        if first is not None:
            figure.add_vline(x=events["ts"].iloc[first], line_color="#8e44ad", opacity=0.7,
                             annotation_text=cause.kind.replace("_", " "),
                             annotation_position="top left", annotation_font_size=10)
    # whole messages: no 0.5 ticks, and one tick a message on a short axis
    queued = table.loc[table["metric"] == "mailbox_len", "value"]
    figure.update_yaxes(tickformat=",d", rangemode="tozero", row=1, col=1,
                        **({"dtick": 1} if len(queued) and queued.max() < 10 else {}))
    # the legend under the panels, not beside them: a narrow notebook keeps its plot
    figure.update_layout(height=900, margin={"l": 50, "r": 20, "t": 40, "b": 30},
                         legend={"font": {"size": 10}, "orientation": "h", "yanchor": "top",
                                 "y": -0.04, "x": 0})
    return Dashboard(figure)

