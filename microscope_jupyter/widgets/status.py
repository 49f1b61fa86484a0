"""The status of a running or finished trace as a display object: what
``%trace start`` shows and keeps up to date."""

from __future__ import annotations

import html
import threading
import time
from typing import Any

__all__ = ["TraceStatus", "StatusLine"]


class TraceStatus:
    """One look at a recording: HTML in a notebook (a coloured dot and the
    counts), plain text anywhere else (a terminal, a log, nbval)."""

    def __init__(self, status: dict):
        self.status = status

    def _parts(self) -> tuple[str, list[str], str]:
        s = self.status
        state = "recording" if s["state"] == "running" else s["state"]
        parts = [f"{s['events']:,} events", f"{s['rate']:,.0f}/s", f"{s['dropped']:,} dropped",
                 f"{s['elapsed_s']:.1f} s"]
        waiting = s["state_hooks"]["pending"]
        if waiting:  # a GenServer still working through a backlog: its state comes later
            parts.append(f"state hooks pending on {waiting} process(es)")
        # why it stopped, then what its start found (notes: said once, kept to the end)
        said = [s.get("message") or ""] + list(s.get("notes", ()))
        return state, parts, " ".join(text for text in said if text)

    def __repr__(self) -> str:
        state, parts, message = self._parts()
        return f"{state}: {', '.join(parts)}" + (f". {message}" if message else "")

    def _repr_html_(self) -> str:
        state, parts, message = self._parts()
        running = self.status["state"] == "running"
        dot = ('<span style="color:#d93025">&#9679;</span>' if running
               else '<span style="color:#5f6368">&#9632;</span>')
        dropped = self.status["dropped"]
        if dropped:
            parts[2] = f'<b style="color:#b06000">{html.escape(parts[2])}</b>'
        note = f' <span style="color:#5f6368">{html.escape(message)}</span>' if message else ""
        return (f'<div style="font-family:sans-serif;font-size:12px">{dot} <b>{state}</b> · '
                f'{" · ".join(parts)}{note}</div>')


class StatusLine:
    """A TraceStatus display that rewrites itself while a recording runs."""

    def __init__(self, recording: Any):
        from IPython.display import display

        self.recording = recording
        self.handle = display(TraceStatus(recording.status()), display_id=True)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while self.recording.running:
            time.sleep(0.5)
            if self.handle is not None:
                self.handle.update(TraceStatus(self.recording.status()))
        if self.handle is not None:
            self.handle.update(TraceStatus(self.recording.status()))
