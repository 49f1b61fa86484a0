"""What every widget shares: its bundle, a static rendering next to the live view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import pandas as pd

from ..errors import MicroscopeError

STATIC = Path(__file__).resolve().parent / "static"


def esm(name: str) -> Path:
    """The bundled front end of widget ``name`` (``js/src/<name>.js``, built into static/)."""
    path = STATIC / f"{name}.js"
    if not path.exists():
        raise MicroscopeError(f"the widget bundle {path.name} is missing: build it with "
                              "`./dev build` (or `npm ci && node build.mjs` in js/)")
    return path


class Widget(anywidget.AnyWidget):
    """Adds a static HTML rendering next to the live view, and a stable repr."""

    def _repr_mimebundle_(self, **kwargs: Any):
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        data["text/html"] = self.static_html()
        return data, metadata

    def static_html(self) -> str:  # pragma: no cover - every widget overrides
        return ""


def finding_marks(source: Any, lane_of: dict[str, int] | None = None,
                  t0_ns: int | None = None) -> list[dict]:
    """The recording's findings as marks a widget draws and links to:
    ``{seq, t_us, lane, severity, kind, text}`` at each finding's first event
    (``t_us`` from ``t0_ns``; ``lane`` from ``lane_of`` by pid, -1 if none)."""
    try:
        findings = source.findings()
    except MicroscopeError:
        return []
    if findings.empty:
        return []
    ts = source.store.raw().ts_ns
    marks = []
    for row in findings.itertuples(index=False):
        seq = int(row.first_seq)
        if not 0 <= seq < len(ts):
            continue
        marks.append({
            "seq": seq, "kind": str(row.kind), "severity": str(row.severity),
            "text": str(row.summary),
            "t_us": None if t0_ns is None else round((int(ts[seq]) - t0_ns) / 1000, 1),
            "lane": (lane_of or {}).get(row.pid, -1) if isinstance(row.pid, str) else -1,
        })
    return marks


def records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame rows as JSON-able dicts (numpy ints and NaN made plain)."""
    clean = frame.astype(object).where(frame.notna(), None)
    out = []
    for row in clean.to_dict("records"):
        out.append({k: (int(v) if isinstance(v, (np.integer,)) else v) for k, v in row.items()})
    return out
