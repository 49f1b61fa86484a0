"""Global ids: every pid, name and MFA an event names, interned once per store.

Event headers carry small integers; this table maps them back to terms.
Id 0 is "none". A pid is one id per (node, pid), so equal-looking pids of
two nodes stay apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..beam.terms import Pid
from .frame import id_text

__all__ = ["IdTable"]


class IdTable:
    def __init__(self) -> None:
        self._terms: list[Any] = [None]        # global id -> term
        self._index: dict[tuple, int] = {}     # (node, key) -> global id

    def __len__(self) -> int:
        return len(self._terms)

    def intern(self, node: str, term: Any) -> int:
        key = _id_key(node, term)
        gid = self._index.get(key)
        if gid is None:
            gid = len(self._terms)
            self._terms.append(term)
            self._index[key] = gid
        return gid

    def intern_all(self, node: str, terms: list[Any]) -> np.ndarray:
        return np.fromiter((self.intern(node, t) for t in terms), np.int64, len(terms))

    def of_pid(self, node: str, pid: Pid) -> int:
        """The id of a pid already interned, -1 if it is not."""
        return self._index.get(_id_key(node, pid), -1)

    def term(self, gid: int) -> Any:
        return self._terms[gid]

    def terms(self) -> list[Any]:
        return list(self._terms)

    def texts(self, syntax: str) -> np.ndarray:
        """Every id's text (pids, names, MFAs), indexed by id."""
        return np.array([id_text(t, syntax) for t in list(self._terms)], dtype=object)

    def with_nodes(self) -> list[tuple[str | None, Any]]:
        """Ids 1..n as (node, term): what a saved store keeps to intern them again."""
        node_of = {gid: key[0] or None for key, gid in self._index.items()}
        return [(node_of.get(gid), term) for gid, term in enumerate(self._terms) if gid]

    def pids_with_text(self, text: str) -> set[int]:
        return {gid for gid, term in enumerate(self._terms)
                if isinstance(term, Pid) and str(term) == text}


def _id_key(node: str, term: Any) -> tuple:
    """What makes two interned terms one id. Pids (the most common, by far) skip repr."""
    if type(term) is Pid:
        return (node, "Pid", term.node, term.id, term.serial, term.creation)
    return (node if isinstance(term, tuple) else "", type(term).__name__, repr(term))
