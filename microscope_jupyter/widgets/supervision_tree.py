"""SupervisionTree: processes as a collapsible tree (``js/src/supervision_tree.js``)."""

from __future__ import annotations

from typing import Any

import traitlets as t

from . import static_html
from ._base import Widget, esm, records

__all__ = ["SupervisionTree"]


class SupervisionTree(Widget):
    """Processes as a collapsible tree; colour by status, mailbox or memory.

    ``SupervisionTree(s)`` reads the live node when ``s`` is attached (call
    ``refresh()`` to read it again), else the recording. ``selected`` holds
    the pid clicked last.
    """

    _esm = esm("supervision_tree")
    nodes = t.List(t.Dict()).tag(sync=True)
    selected = t.Unicode("").tag(sync=True)
    query = t.Unicode("").tag(sync=True)
    color_by = t.Enum(["status", "mailbox", "memory"], "status").tag(sync=True)

    def __init__(self, source: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self._source = source
        self.refresh()

    def __repr__(self) -> str:
        return f"<SupervisionTree: {len(self.nodes)} processes>"

    def refresh(self) -> None:
        self.nodes = records(self._source.supervision_tree())

    @property
    def selected_process(self) -> dict | None:
        return next((n for n in self.nodes if n["pid"] == self.selected), None)

    def static_html(self) -> str:
        return static_html.supervision_tree(self.nodes)
