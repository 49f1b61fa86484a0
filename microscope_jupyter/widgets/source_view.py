"""SourceView: a module's source at the place an event, crash or finding
points to, with what ran highlighted (``js/src/source_view.js``)."""

from __future__ import annotations

import html
import numbers
import re
from pathlib import Path
from typing import Any

import traitlets as t

from ..analysis.source_site import (Site, executed, line_snapshots, site_of_event,
                                    site_of_finding)
from ..errors import MicroscopeError
from ._base import Widget, esm
from .static_style import UI

__all__ = ["SourceView"]


class SourceView(Widget):
    """The source of the module an event, crash or finding points to, at its
    function and line, with each function that ran shaded by how often (and
    labelled with its calls and total time). Lines that called
    ``BeamMicroscope.inspect_line`` show how often, and the newest binding.

    ``target``: an event seq, a finding (a row of ``s.findings()``), or a
    module name. The source comes from the node (the path the module was
    compiled from, read there) or, when the node cannot read it or the
    session is a saved one, from ``source_root`` (a local checkout: the file
    is found by its path's tail). Function lines come from the BEAM's debug
    info; a release built without it gets a note, and only crash lines.
    ``show(target)`` moves it.
    """

    _esm = esm("source_view")
    module = t.Unicode("").tag(sync=True)
    path = t.Unicode("").tag(sync=True)
    lines = t.List(t.Unicode()).tag(sync=True)
    functions = t.Dict().tag(sync=True)        # "name/arity" -> first line
    ran = t.Dict().tag(sync=True)              # "name/arity" -> [calls, total µs]
    line = t.Int(0).tag(sync=True)             # the line to show (0: the function's first)
    function = t.Unicode("").tag(sync=True)
    what = t.Unicode("").tag(sync=True)
    note = t.Unicode("").tag(sync=True)
    snapshots = t.Dict().tag(sync=True)        # "line" -> "3× · n = 7" (inspect_line)

    def __init__(self, source: Any, target: Any = None, source_root: str | Path | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self._source = source
        self.follow_notes(source)
        self._root = Path(source_root) if source_root else None
        if target is not None:
            self.show(target)

    def __repr__(self) -> str:
        return f"<SourceView: {self.module or 'nothing'}{':' + str(self.line) if self.line else ''}>"

    def show(self, target: Any) -> "SourceView":
        if isinstance(target, numbers.Integral):      # an event seq (numpy's too)
            site = site_of_event(self._source.facts, int(target))
        elif isinstance(target, str):
            site = Site(target, what=f"module {target}")
        else:
            site = site_of_finding(self._source.facts, target)
        if site.module is None:
            raise MicroscopeError(f"no module to show for {target!r}: {site.what}")
        found = self._read(site.module)
        self.module, self.what = site.module, site.what
        self.path = found.get("source") or ""
        self.functions = found.get("functions", {})
        self.lines = (found.get("text") or "").splitlines()
        self.note = found.get("note", "")
        self.ran = {k: [n, round(us, 1)] for k, (n, us) in executed(self._source.facts, site.module).items()}
        self.snapshots = line_snapshots(self._source.facts, site.module)
        self.function = site.key or ""
        self.line = site.line or self.functions.get(site.key or "", 0)
        return self

    def _read(self, module: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        notes = []
        if getattr(self._source, "attached", False):
            try:
                found = self._source.source(module)
            except MicroscopeError as exc:
                notes.append(str(exc))
        if found.get("functions_error"):
            notes.append(found["functions_error"])
        if not found.get("text"):
            local = self._local_copy(found.get("source"), module)
            if local is not None:
                found["text"] = local.read_text(errors="replace")
                notes.append(f"source read from the local checkout: {local}")
            else:
                notes.append("the source file could not be read on the node"
                             + (" or under source_root" if self._root else
                                "; pass source_root= (a local checkout) to read it here"))
        found["note"] = "; ".join(notes)
        return found

    def _local_copy(self, path: str | None, module: str) -> Path | None:
        """The same file in a local checkout: the longest tail of its path that exists."""
        if self._root is None:
            return None
        if path:
            parts = Path(path).parts
            for k in range(len(parts)):
                candidate = self._root.joinpath(*parts[k:])
                if candidate.is_file():
                    return candidate
        # Elixir's convention: Demo.WorkerB lives in .../demo/worker_b.ex; an
        # Erlang module in <name>.erl. The nearest to the root wins.
        parts = [re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", p).lower()
                 for p in module.lstrip(":").split(".")]
        tail = "/".join(parts)
        matches = [p for p in self._root.rglob("*.e*")
                   if p.suffix in (".ex", ".erl") and p.with_suffix("").as_posix().endswith(tail)]
        return min(matches, key=lambda p: len(p.parts)) if matches else None

    def static_html(self) -> str:

        return static_rendering(self.module, self.path, self.lines, self.line, self.note,
                                       self.what, self.snapshots)


def static_rendering(module: str, path: str, lines: list[str], line: int, note: str, what: str,
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
