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


def records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame rows as JSON-able dicts (numpy ints and NaN made plain)."""
    clean = frame.astype(object).where(frame.notna(), None)
    out = []
    for row in clean.to_dict("records"):
        out.append({k: (int(v) if isinstance(v, (np.integer,)) else v) for k, v in row.items()})
    return out
