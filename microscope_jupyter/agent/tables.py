"""Process tables as the agent sends them: columns, not rows.

    table = Columns.read(remote.rpc(AGENT_MODULE, "process_table", [], 60))
    table.ints("memory")                       # int64 array
    table.texts("pid")                         # "<0.123.0>" or None per row
    table.terms("initial_call", format_mfa)    # each distinct value formatted once

On a node with 50,000 processes a table of rows is 400,000 terms to decode;
as columns it is a few binaries and the distinct values (an MFA, a status
or an application repeats across thousands of processes). The format is
the agent's ``columns/2`` (see COLUMNS in microscope_agent_inspect.erl).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..beam.etf import binary_bytes
from ..beam.terms import Atom, Pid
from ..errors import MicroscopeError
from ..store.columns import RelationTable

__all__ = ["Columns", "read_pids", "read_relations"]

_TAG = Atom("microscope_columns")
_PIDS, _RELATIONS = Atom("microscope_pids"), Atom("microscope_relations")
_PID_RECORD = np.dtype([("node", "<u2"), ("id", "<u4"), ("serial", "<u4"), ("creation", "<u4")])
_RELATION_RECORD = np.dtype([("holder", "<u4"), ("relation", "u1"), ("peer", "<u4")])


class Columns:
    def __init__(self, rows: int, columns: dict[str, tuple[str, Any]]):
        self.rows = rows
        self._columns = columns

    @classmethod
    def read(cls, reply: Any) -> "Columns":
        if not (isinstance(reply, tuple) and len(reply) == 3 and reply[0] == _TAG):
            raise MicroscopeError(f"the agent sent a table this client cannot read: {reply!r:.80}"
                                  "; detach and attach again to reload the agent")
        _, rows, columns = reply
        return cls(rows, {str(name): (str(kind), data) for name, kind, data in columns})

    def _data(self, name: str, kind: str) -> Any:
        have, data = self._columns[name]
        if have != kind:
            raise MicroscopeError(f"column {name!r} is {have}, not {kind}")
        return data

    def ints(self, name: str) -> np.ndarray:
        return np.frombuffer(binary_bytes(self._data(name, "ints")), dtype="<i8").astype(np.int64)

    def texts(self, name: str) -> np.ndarray:
        """A pid column as text ("<0.123.0>"), None where a row has none."""
        data = self._data(name, "pids")
        if self.rows == 0:
            return np.zeros(0, dtype=object)
        return np.array([t or None for t in binary_bytes(data).decode("latin-1").split(" ")],
                        dtype=object)

    def terms(self, name: str, render: Callable[[Any], Any] = lambda v: v) -> np.ndarray:
        """A term column, ``render`` applied once per distinct value."""
        distinct, index = self._data(name, "terms")
        values = np.empty(len(distinct), dtype=object)
        values[:] = [render(v) for v in distinct]
        return values[np.frombuffer(binary_bytes(index), dtype="<u4")] if self.rows else values[:0]


def read_pids(term: Any) -> list[Pid]:
    """Pids as the agent's ``pid_list/1`` sends them (see PIDS in microscope_agent_inspect.erl)."""
    if not (isinstance(term, tuple) and len(term) == 3 and term[0] == _PIDS):
        raise MicroscopeError(f"the agent sent a pid list this client cannot read: {term!r:.80}")
    _, nodes, data = term
    records = np.frombuffer(binary_bytes(data), dtype=_PID_RECORD)
    return [Pid(nodes[n], i, s, c) for n, i, s, c in
            zip(records["node"].tolist(), records["id"].tolist(), records["serial"].tolist(),
                records["creation"].tolist())]


def read_relations(term: Any) -> RelationTable:
    """Links and monitors as the agent's ``relation_columns/1`` sends them (RELATIONS there)."""
    if not (isinstance(term, tuple) and len(term) == 3 and term[0] == _RELATIONS):
        raise MicroscopeError(f"the agent sent relations this client cannot read: {term!r:.80}")
    _, pids, data = term
    records = np.frombuffer(binary_bytes(data), dtype=_RELATION_RECORD)
    return RelationTable(read_pids(pids), records["holder"].astype(np.int64),
                         records["relation"].astype(np.int64), records["peer"].astype(np.int64))
