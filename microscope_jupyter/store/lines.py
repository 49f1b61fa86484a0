"""Line events: what ``BeamMicroscope.inspect_line(label, binding())`` sent
(``elixir_hooks/lib/beam_microscope.ex``), as the store shows it.

    line_snapshot((b"after total", b"lib/demo/worker_b.ex", [(Atom("n"), 3)]))
    # {"label": "after total", "file": "lib/demo/worker_b.ex", "binding": {"n": 3}}

The header carries the rest: the process (pid), the function (mfa) and the
line number (aux). A value that is not a keyword list (``inspect_line("seen",
state)``, a map or a number) is the binding's one entry, ``value``.
"""

from __future__ import annotations

from typing import Any

from ..beam.etf import as_text
from ..beam.terms import Atom
from ..render.elixir import render

__all__ = ["line_snapshot", "line_text"]


def line_snapshot(term: Any) -> Any:
    """The agent's ``{Label, File, Binding}`` as a dict; anything else (a payload
    cut to a summary) as it is."""
    if not (isinstance(term, tuple) and len(term) == 3):
        return term
    label, file, binding = term
    if not _keywords(binding):
        binding = [("value", binding)]
    return {"label": as_text(label), "file": as_text(file),
            "binding": {str(name): value for name, value in binding}}


def _keywords(term: Any) -> bool:
    """A keyword list, as ``binding()`` gives: ``[{atom, value}]`` (empty too)."""
    return isinstance(term, list) and all(
        isinstance(k, tuple) and len(k) == 2 and isinstance(k[0], Atom) for k in term)


def line_text(snapshot: Any, syntax: str, limit: int) -> str:
    """``after total: n = 3, state = %{count: 2}``: the label, then each variable."""
    if not isinstance(snapshot, dict):
        return render(snapshot, syntax, limit)
    values = ", ".join(f"{name} = {render(value, syntax, limit)}"
                       for name, value in snapshot["binding"].items())
    label = snapshot["label"]
    head = "" if label is None else (label if isinstance(label, str)
                                     else render(label, syntax, limit))
    text = f"{head}: {values}" if head and values else head or values
    return text[:limit]
