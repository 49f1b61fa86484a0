"""A recording saved with ``s.save(path)`` and opened again: ``mic.load(path)``.

    s = mic.load("incident-481/")
    s.findings(); s.time_travel(); SequenceDiagram(s); s.report("incident-481.html")
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .analysis.recorded import SessionBase, load_recording
from .report import Reporting
from .store.event_store import EventStore

__all__ = ["OfflineSession", "load"]

log = logging.getLogger(__name__)


class OfflineSession(Reporting, SessionBase):
    """A recording loaded from disk: every query, widget and report, no node."""

    def __init__(self, store: EventStore, metadata: dict[str, Any], path: Path):
        self._init_recorded(store)
        self.metadata = metadata
        self.audit = list(metadata.get("audit", []))
        self._notes = list(metadata.get("annotations", []))
        self.path = path
        self.node = metadata.get("node")
        self.missing: list[str] = []   # mic.load(path, partial=True): what was not there

    def __repr__(self) -> str:
        return f"<microscope OfflineSession {self.node} {len(self.store)} events from {self.path}>"

    @property
    def attached(self) -> bool:
        return False

    def _initial_tree(self) -> list[dict]:
        return list(self.metadata.get("tree", []))

    def _module_versions(self) -> list[dict]:
        return list(self.metadata.get("modules", []))

    def _metadata(self) -> dict[str, Any]:
        meta = dict(self.metadata)
        meta.update(super()._metadata())
        return meta


def load(path: str | Path, partial: bool = False) -> OfflineSession:
    """Open a session saved with ``s.save(path)``; works with no node.

    Every file is checked first: a damaged or missing one is a RecordingError
    naming it. ``partial=True`` loads what is there instead, says what is
    missing (a warning, and ``.missing``), and leaves out what it held."""
    store, metadata, missing = load_recording(path, partial=partial)
    session = OfflineSession(store, metadata, Path(path))
    session.missing = missing
    if missing:
        log.warning("%s is partial, loaded without: %s", path, "; ".join(missing))
    return session
