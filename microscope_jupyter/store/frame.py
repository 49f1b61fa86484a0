"""Events as the pandas frame people see: payloads decoded and rendered.

    renderer = PayloadRenderer("elixir", text_limit=200)
    renderer.chunk_frame(headers, payloads, seq_start, node, ts_ns, id_texts)

Identical payloads (ticks, repeated messages) decode and render once: the
renderer keeps them by their bytes. Decoded terms are shared between rows,
so treat them as read-only.
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
from .otp import transition
from .schema import AUX, EVENT_COLUMNS, FLAG_TRUNCATED, KIND_CODES, KINDS

__all__ = ["PayloadRenderer", "id_text", "empty_frame"]

_MEMO_MAX = 200_000
_KIND_NAMES = np.array([KINDS.get(i, f"kind_{i}") for i in range(256)], dtype=object)
_STATE = KIND_CODES["state"]
_DROPPED = KIND_CODES["dropped"]
_MAILBOX = KIND_CODES["mailbox"]
_DURATION = np.array([KIND_CODES[k] for k, v in AUX.items() if v == "duration_ns"], dtype=np.uint8)
_COUNT = np.array([KIND_CODES[k] for k, v in AUX.items() if v == "count"], dtype=np.uint8)


class PayloadRenderer:
    def __init__(self, syntax: str = "elixir", text_limit: int = 200):
        self.syntax = syntax
        self.text_limit = text_limit
        self._memo: dict[tuple[int, bytes], tuple[Any, str | None]] = {}

    def chunk_frame(self, headers: np.ndarray, payloads: Any, seq_start: int, node: str,
                    ts_ns: np.ndarray, id_texts: np.ndarray) -> pd.DataFrame:
        """One chunk's events as the public frame's rows (names are added later)."""
        h = headers
        n = len(h)
        terms: list[Any] = [None] * n
        texts: list[str | None] = [None] * n
        # Plain Python lists: indexing numpy scalars in a loop costs more than the decode.
        kinds = h["kind"].tolist()
        offs, lens = h["pay_off"].tolist(), h["pay_len"].tolist()
        flags, aux = h["flags"].tolist(), h["aux"].tolist()
        blob = payloads
        memo = self._memo
        for i in range(n):
            length = lens[i]
            kind = kinds[i]
            if length:
                raw = bytes(blob[offs[i]:offs[i] + length])
                key = (kind, raw)
                hit = memo.get(key)
                if hit is None:
                    hit = self.decode_payload(kind, raw, flags[i])
                    if len(memo) < _MEMO_MAX:
                        memo[key] = hit
                terms[i], texts[i] = hit
            elif kind == _DROPPED:
                terms[i] = aux[i]
                texts[i] = f"{aux[i]} events dropped by the agent"
            elif kind == _MAILBOX:
                terms[i] = aux[i]
                texts[i] = f"{aux[i]} messages queued"
        mfa_text = id_texts[h["mfa"]]
        frame = pd.DataFrame({
            "seq": np.arange(seq_start, seq_start + n, dtype=np.int64),
            "node": node,
            "ts": pd.to_datetime(np.asarray(ts_ns), unit="ns", utc=True),
            "kind": _KIND_NAMES[kinds],
            "pid": id_texts[h["pid"]],
            "name": None,
            "peer": id_texts[h["peer"]],
            "mfa": mfa_text,
            # object, not str: pandas would turn a column of Atoms into plain text
            "term": pd.Series(terms, dtype=object),
            "text": texts,
            "_pid": h["pid"].astype(np.int64),
            "_peer": h["peer"].astype(np.int64),
            "_aux": h["aux"].astype(np.int64),
            # aux under the name of what it means for the row's kind (schema.AUX)
            "_duration_ns": np.where(np.isin(h["kind"], _DURATION), h["aux"], 0).astype(np.int64),
            "_count": np.where(np.isin(h["kind"], _COUNT), h["aux"], 0).astype(np.int64),
            "_truncated": (h["flags"] & FLAG_TRUNCATED).astype(bool),
        })
        return frame

    def decode_payload(self, kind: int, raw: bytes, flags: int) -> tuple[Any, str | None]:
        try:
            term = decode(raw)
        except DecodeError as exc:
            return None, f"<undecodable payload: {exc}>"
        if kind == _STATE:
            term = transition(term)
        if flags & FLAG_TRUNCATED:
            return term, (f"#Truncated<{term[1]} bytes>" if isinstance(term, tuple) else None)
        return term, self._text(kind, term)

    def _text(self, kind: int, term: Any) -> str:
        if kind == _STATE:
            return render(term["after"], self.syntax, self.text_limit)
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


def empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})
    frame["seq"] = frame["seq"].astype(np.int64)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    for c in ("_pid", "_peer", "_aux", "_duration_ns", "_count"):
        frame[c] = pd.Series(dtype=np.int64)
    frame["_truncated"] = pd.Series(dtype=bool)
    return frame
