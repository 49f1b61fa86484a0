"""Self-contained reports: one HTML file that works offline.

    s.report("incident-481.html")                 # a live or saved session
    microscope report out/01_quickstart.ipynb     # an executed notebook, widgets made live

A report holds the explanation, the findings with their evidence, the
annotations, and the widgets live (their bundles and state inlined, no CDN),
each over its static rendering for a reader whose mail client blocks
scripts. See ``report.session`` and ``report.notebook``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_report", "report_notebook"]


# The widgets (anywidget, ipywidgets, IPython) and nbconvert load when a
# report is written, not when the package is imported.
def write_report(session: Any, path: Path, **options: Any) -> Path:
    from .session import write_report as write

    return write(session, path, **options)


def report_notebook(notebook: str | Path, out: str | Path | None = None) -> tuple[Path, dict]:
    from .notebook import report_notebook as convert

    return convert(notebook, out)
