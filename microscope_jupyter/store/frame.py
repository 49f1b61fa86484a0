"""Events as the pandas frame people see, built from the raw columns.

    renderer = PayloadRenderer("elixir", text_limit=200, max_bytes=128 << 20)
    frame = events_frame(raw, PayloadSource(raw, renderer), id_texts)

Every header column is vectorised; ``term`` and ``text`` are lazy
(``store.lazy``): a payload is decoded and rendered when a row is read.
Identical payloads (ticks, repeated messages) decode and render once: the
renderer keeps them by their bytes, up to ``max_bytes`` of payload. Decoded
terms are shared between rows, so treat them as read-only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..beam.etf import decode
from ..beam.terms import Atom, Pid
from ..errors import DecodeError
from ..render.elixir import render
from ..render.names import format_mfa_term, format_name
from .columns import RawColumns
from .lazy import PayloadArray, PayloadSource
from .lines import line_snapshot, line_text
from .logs import log_entry, log_text
from .otp import transition
from .schema import AUX, EVENT_COLUMNS, FLAG_TRUNCATED, KIND_CODES, KINDS

__all__ = ["PayloadRenderer", "events_frame", "id_text", "empty_frame", "text_column"]

# What pandas makes of a column of str: Arrow-backed "str" from pandas 3 on
# (with pyarrow), object before.
_TEXT_DTYPE = pd.Series(["x"]).dtype

# What a memo entry costs beyond its payload's bytes (the key tuple, the
# decoded term and its text), roughly: enough to keep the memo inside its
# share of the store's memory budget.
_ENTRY_OVERHEAD = 400
_KIND_NAMES = [KINDS.get(i, f"kind_{i}") for i in range(256)]
_STATE = KIND_CODES["state"]
_LINE = KIND_CODES["line"]
_LOG = KIND_CODES["log"]
_DURATION = np.array([KIND_CODES[k] for k, v in AUX.items() if v == "duration_ns"], dtype=np.uint8)
_COUNT = np.array([KIND_CODES[k] for k, v in AUX.items() if v == "count"], dtype=np.uint8)


class PayloadRenderer:
    def __init__(self, syntax: str = "elixir", text_limit: int = 200,
                 max_bytes: int = 128 << 20):
        self.syntax = syntax
        self.text_limit = text_limit
        self.max_bytes = max_bytes
        self.memo_bytes = 0
        self._memo: dict[tuple[int, bytes], tuple[Any, str | None]] = {}

    def pair(self, kind: int, raw: bytes, flags: int) -> tuple[Any, str | None]:
        """(term, text) of one payload, memoised by its bytes."""
        key = (kind, raw)
        hit = self._memo.get(key)
        if hit is None:
            hit = self.decode_payload(kind, raw, flags)
            cost = len(raw) + _ENTRY_OVERHEAD
            if self.memo_bytes + cost <= self.max_bytes:
                self._memo[key] = hit
                self.memo_bytes += cost
        return hit

    def decode_payload(self, kind: int, raw: bytes, flags: int) -> tuple[Any, str | None]:
        try:
            term = decode(raw)
        except DecodeError as exc:
            return None, f"<undecodable payload: {exc}>"
        if kind == _STATE:
            term = transition(term)
        elif kind == _LINE:
            term = line_snapshot(term)
        elif kind == _LOG:
            term = log_entry(term)
        if flags & FLAG_TRUNCATED:
            return term, (f"#Truncated<{term[1]} bytes>" if isinstance(term, tuple) else None)
        return term, self._text(kind, term)

    def _text(self, kind: int, term: Any) -> str:
        if kind == _STATE:
            return render(term["after"], self.syntax, self.text_limit)
        if kind == _LINE:
            return line_text(term, self.syntax, self.text_limit)
        if kind == _LOG:
            return log_text(term, self.syntax, self.text_limit)
        return render(term, self.syntax, self.text_limit)


def id_text(term: Any, syntax: str) -> str | None:
    if term is None:
        return None
    if isinstance(term, Pid):
        return str(term)
    if isinstance(term, Atom):
        return format_name(term, syntax)
    if isinstance(term, tuple) and len(term) == 3 and isinstance(term[2], int):
        return format_mfa_term(term, syntax)
    if isinstance(term, tuple) and len(term) == 2:   # {Name, Node} remote send
        return f"{format_name(term[0], syntax)}@{term[1]}"
    return render(term, syntax, 80)


def events_frame(raw: RawColumns, source: PayloadSource, id_texts: np.ndarray) -> pd.DataFrame:
    """Every event in ``raw`` as the public frame's rows (names are added later)."""
    n = len(raw)
    if n == 0:
        return empty_frame()
    seqs = np.arange(n, dtype=np.int64)
    kind = raw.kind
    return pd.DataFrame({
        "seq": seqs,
        "node": pd.Categorical.from_codes(raw.node.astype(np.int64),
                                          categories=list(raw.node_names)).astype(object)
        if len(raw.node_names) > 1 else raw.node_names[0],
        "ts": pd.to_datetime(raw.ts_ns, unit="ns", utc=True),
        "kind": _kind_column(kind),
        "pid": text_column(id_texts, raw.pid),
        "name": None,
        "peer": text_column(id_texts, raw.peer),
        "mfa": text_column(id_texts, raw.mfa),
        "term": PayloadArray.of(source, seqs, "term"),
        "text": PayloadArray.of(source, seqs, "text"),
        "_pid": raw.pid,
        "_peer": raw.peer,
        "_aux": raw.aux,
        # aux under the name of what it means for the row's kind (schema.AUX)
        "_duration_ns": np.where(np.isin(kind, _DURATION), raw.aux, 0).astype(np.int64),
        "_count": np.where(np.isin(kind, _COUNT), raw.aux, 0).astype(np.int64),
        "_truncated": (raw.flags & FLAG_TRUNCATED).astype(bool),
    })


def text_column(texts: np.ndarray, codes: np.ndarray) -> Any:
    """``texts[codes]`` (str or None each) as the column pandas would make of
    it. With Arrow-backed text, through an Arrow dictionary: pandas would
    otherwise check and copy every one of a million strings (about 0.05 s a
    column, paid for pid, peer, mfa and name in every events frame)."""
    present = np.array([t is not None for t in texts], dtype=bool)
    if (isinstance(_TEXT_DTYPE, pd.StringDtype) and _TEXT_DTYPE.storage == "pyarrow"
            and present[codes].any()):      # all None: pandas keeps an object column
        import pyarrow as pa

        try:
            dictionary = pa.array(list(texts), type=pa.large_string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):    # not all text: pandas decides
            return texts[codes]
        values = pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int64)),
                                                dictionary).cast(pa.large_string())
        return pd.arrays.ArrowStringArray(values, dtype=_TEXT_DTYPE)
    return texts[codes]


def _kind_column(kind: np.ndarray) -> pd.Categorical:
    """Kind names as a categorical of the kinds present, in alphabetical order."""
    present = sorted((_KIND_NAMES[code], code) for code in np.unique(kind).tolist())
    lookup = np.zeros(256, dtype=np.int64)
    for position, (_, code) in enumerate(present):
        lookup[code] = position
    return pd.Categorical.from_codes(lookup[kind], categories=[name for name, _ in present])


def empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})
    frame["seq"] = frame["seq"].astype(np.int64)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    for c in ("_pid", "_peer", "_aux", "_duration_ns", "_count"):
        frame[c] = pd.Series(dtype=np.int64)
    frame["_truncated"] = pd.Series(dtype=bool)
    return frame
