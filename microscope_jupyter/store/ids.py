"""Global ids: every pid, name and MFA an event names, interned once per store.

Event headers carry small integers; this table maps them back to terms.
Id 0 is "none". A pid carries its node, so it is one id whichever node's
trace names it; a name or other term is one id per node that traced it.
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

    def node_of(self, gid: int) -> str:
        """The node of a pid id ("" for other terms): names are per node."""
        return str(getattr(self._terms[gid], "node", ""))

    def terms(self) -> list[Any]:
        return list(self._terms)

    def texts(self, syntax: str, home_nodes: set[str] = frozenset()) -> np.ndarray:
        """Every id's text (pids, names, MFAs), indexed by id. When several nodes
        were traced (a cluster), a pid names its node: ``<0.123.0>@app2@host``."""
        several = len(home_nodes) > 1

        def text(term: Any) -> str | None:
            if several and type(term) is Pid:
                return f"{term}@{term.node}"
            return id_text(term, syntax)
        return np.array([text(t) for t in list(self._terms)], dtype=object)

    def with_nodes(self) -> list[tuple[str | None, Any]]:
        """Ids 1..n as (node, term): what a saved store keeps to intern them again."""
        node_of = {gid: key[0] or None for key, gid in self._index.items()}
        return [(node_of.get(gid), term) for gid, term in enumerate(self._terms) if gid]

    def pids_with_text(self, text: str) -> set[int]:
        """Pids whose text is ``text``: ``<0.12.0>`` (on any node) or ``<0.12.0>@node``."""
        return {gid for gid, term in enumerate(self._terms)
                if isinstance(term, Pid) and text in (str(term), f"{term}@{term.node}")}


def _id_key(node: str, term: Any) -> tuple:
    """What makes two interned terms one id. Pids (the most common, by far) skip repr."""
    if type(term) is Pid:
        # A pid names itself (its node is in it): the same process seen from
        # two nodes' traces (a message between them) is one id.
        return ("", "Pid", term.node, term.id, term.serial, term.creation)
    return (node if isinstance(term, tuple) else "", type(term).__name__, repr(term))
