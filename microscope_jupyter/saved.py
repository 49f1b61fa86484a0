"""A recording saved with ``s.save(path)`` and opened again: ``mic.load(path)``.

    s = mic.load("incident-481/")
    s.findings(); s.time_travel(); SequenceDiagram(s); s.report("incident-481.html")
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .analysis.facts import Facts
from .session_base import SessionBase
from .store.event_store import EventStore
from .store.persist import load_store

__all__ = ["OfflineSession", "load"]

log = logging.getLogger(__name__)


class OfflineSession(SessionBase):
    """A recording loaded from disk: every query, widget and report, no node."""

    def __init__(self, store: EventStore, metadata: dict[str, Any], path: Path):
        self.node = metadata.get("node")
        super().__init__(Facts(store, node=self.node), audit=metadata.get("audit", []),
                         notes=metadata.get("annotations", []))
        self.facts.initial_tree = list(metadata.get("tree", []))
        self._versions = list(metadata.get("modules", []))
        self.metadata = metadata
        self.path = path
        self.missing: list[str] = []   # mic.load(path, partial=True): what was not there

    def __repr__(self) -> str:
        return f"<microscope OfflineSession {self.node} {len(self.store)} events from {self.path}>"

    @property
    def attached(self) -> bool:
        return False

    def _metadata(self) -> dict[str, Any]:
        meta = dict(self.metadata)
        meta.update(super()._metadata())
        return meta


def load(path: str | Path, partial: bool = False) -> OfflineSession:
    """Open a session saved with ``s.save(path)``; works with no node.

    Every file is checked first: a damaged or missing one is a RecordingError
    naming it. ``partial=True`` loads what is there instead, says what is
    missing (a warning, and ``.missing``), and leaves out what it held."""
    store, metadata, missing = load_store(path, partial=partial)
    session = OfflineSession(store, metadata, Path(path))
    session.missing = missing
    if missing:
        log.warning("%s is partial, loaded without: %s", path, "; ".join(missing))
    return session
