"""The ``term`` and ``text`` columns, decoded only when a row is looked at.

    source = PayloadSource(raw, renderer)
    column = PayloadArray.of(source, seqs, "text")    # a pandas ExtensionArray
    frame["text"] = column                            # costs an int64 array

Building a frame of a million events must not decode a million payloads:
a ``PayloadArray`` holds the seqs of its rows and the source (one snapshot
of the store's raw columns). Filtering, slicing, ``head()``, ``take`` and
``concat`` only move seqs; a payload is decoded and rendered when a value
is read (a scalar, the rows a notebook displays, ``to_numpy()``, ``.str``,
a comparison), once per distinct payload through the renderer's memo, and
the values an array has read are kept with it.

To pandas it is an object column: every operation that needs the values
gets them through ``__array__``. The text column's dtype has ``type = str``,
so ``.str`` works; its methods come from pandas' object-string mixin.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray, ExtensionDtype, take
from pandas.api.types import is_integer, is_list_like
from pandas.core.strings.object_array import ObjectStringArrayMixin

from .columns import RawColumns
from .schema import KIND_CODES

__all__ = ["PayloadSource", "PayloadArray", "PayloadDtype", "materialize"]

_DROPPED = KIND_CODES["dropped"]
_MAILBOX = KIND_CODES["mailbox"]
_FIELDS = ("term", "text")


class PayloadSource:
    """Decodes and renders the payloads of one snapshot of the store."""

    def __init__(self, raw: RawColumns, renderer: Any):
        self.raw = raw
        self.renderer = renderer

    def values(self, seqs: np.ndarray, field: str) -> np.ndarray:
        out = np.full(len(seqs), None, dtype=object)
        real = seqs >= 0
        if not real.any():
            return out
        wanted, inverse = np.unique(seqs[real], return_inverse=True)
        index = 0 if field == "term" else 1
        raw = self.raw
        kinds = raw.kind[wanted].tolist()
        lens = raw.pay_len[wanted].tolist()
        flags = raw.flags[wanted].tolist()
        aux = raw.aux[wanted].tolist()
        payloads = raw.payloads(wanted)
        found = np.empty(len(wanted), dtype=object)
        pair = self.renderer.pair
        for i, (kind, length) in enumerate(zip(kinds, lens)):
            if length:
                found[i] = pair(kind, payloads[i], flags[i])[index]
            elif kind == _DROPPED:
                found[i] = aux[i] if index == 0 else f"{aux[i]} events dropped by the agent"
            elif kind == _MAILBOX:
                found[i] = aux[i] if index == 0 else f"{aux[i]} messages queued"
            else:
                found[i] = None
        out[real] = found[inverse]
        return out


class PayloadDtype(ExtensionDtype):
    """``term`` (decoded Erlang terms) or ``text`` (their rendering, str)."""

    _metadata = ("field",)
    kind = "O"
    na_value = None

    def __init__(self, field: str = "term"):
        if field not in _FIELDS:
            raise ValueError(f"field must be one of {_FIELDS}, got {field!r}")
        self.field = field

    @property
    def type(self) -> type:  # type: ignore[override]
        return str if self.field == "text" else object

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"payload[{self.field}]"

    @classmethod
    def construct_array_type(cls) -> type["PayloadArray"]:
        return PayloadArray

    @classmethod
    def construct_from_string(cls, string: str) -> "PayloadDtype":
        for field in _FIELDS:
            if string == f"payload[{field}]":
                return cls(field)
        raise TypeError(f"Cannot construct a 'PayloadDtype' from '{string}'")


class PayloadArray(ObjectStringArrayMixin, ExtensionArray):
    """Rows of a payload column: seqs into a source, values read on demand."""

    def __init__(self, dtype: PayloadDtype, source: PayloadSource | None, seqs: np.ndarray | None,
                 values: np.ndarray | None = None):
        if source is None and values is None:
            raise ValueError("a PayloadArray needs a source or its values")
        self._dtype = dtype
        self._source = source
        self._seqs = seqs
        self._values = values   # read values, kept; the only state once materialized

    @classmethod
    def of(cls, source: PayloadSource, seqs: np.ndarray, field: str) -> "PayloadArray":
        return cls(PayloadDtype(field), source, np.asarray(seqs, dtype=np.int64), None)

    @classmethod
    def _from_values(cls, values: Any, dtype: PayloadDtype) -> "PayloadArray":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
        return cls(dtype, None, None, array)

    # ------------------------------------------------------------ pandas API

    @classmethod
    def _from_sequence(cls, scalars, *, dtype=None, copy=False):
        if not isinstance(dtype, PayloadDtype):
            dtype = PayloadDtype("term")
        return cls._from_values(scalars, dtype)

    @classmethod
    def _from_factorized(cls, values, original):
        return cls._from_values(values, original.dtype)

    @property
    def dtype(self) -> PayloadDtype:
        return self._dtype

    def __len__(self) -> int:
        return len(self._values) if self._seqs is None else len(self._seqs)

    @property
    def nbytes(self) -> int:
        return (0 if self._seqs is None else self._seqs.nbytes) + \
            (0 if self._values is None else self._values.nbytes)

    def _read(self) -> np.ndarray:
        if self._values is None:
            self._values = self._source.values(self._seqs, self._dtype.field)
        return self._values

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        values = self._read()
        return values if dtype is None or np.dtype(dtype) == object else values.astype(dtype)

    def __iter__(self):
        # Read the rows once, not one by one (pandas' default goes through __getitem__).
        return iter(self._read())

    def _derive(self, seqs: np.ndarray | None, values: np.ndarray | None) -> "PayloadArray":
        return type(self)(self._dtype, self._source, seqs, values)

    def __getitem__(self, key):
        if is_integer(key):
            i = int(key)
            if self._values is not None:
                return self._values[i]
            if i < 0:
                i += len(self)
            if not 0 <= i < len(self):
                raise IndexError(f"index {key} is out of bounds for length {len(self)}")
            return self._source.values(self._seqs[i:i + 1], self._dtype.field)[0]
        key = pd.api.indexers.check_array_indexer(self, key) if is_list_like(key) else key
        return self._derive(None if self._seqs is None else self._seqs[key],
                            None if self._values is None else self._values[key])

    def __setitem__(self, key, value) -> None:
        values = self._read().copy()
        values[key] = value
        self._values, self._seqs, self._source = values, None, None

    def isna(self) -> np.ndarray:
        return pd.isna(self._read()).astype(bool) if len(self) else np.zeros(0, dtype=bool)

    def take(self, indices, *, allow_fill: bool = False, fill_value=None) -> "PayloadArray":
        indices = np.asarray(indices, dtype=np.int64)
        seqs = None if self._seqs is None else take(self._seqs, indices, allow_fill=allow_fill,
                                                   fill_value=-1)
        values = None
        fill = None if fill_value is None or pd.isna(fill_value) else fill_value
        if self._values is not None or (allow_fill and fill is not None):
            source = self._read()
            if allow_fill:
                values = source.take(np.where(indices < 0, 0, indices)) if len(source) else \
                    np.full(len(indices), None, dtype=object)
                values[indices < 0] = fill
            else:
                values = source.take(indices)
        return self._derive(seqs, values)

    def copy(self) -> "PayloadArray":
        return self._derive(None if self._seqs is None else self._seqs.copy(),
                            None if self._values is None else self._values.copy())

    @classmethod
    def _concat_same_type(cls, to_concat) -> "PayloadArray":
        arrays = list(to_concat)
        first = arrays[0]
        if all(a._seqs is not None and a._source is first._source for a in arrays):
            return first._derive(np.concatenate([a._seqs for a in arrays]), None)
        return cls(first.dtype, None, None, np.concatenate([a._read() for a in arrays]))

    def _values_for_factorize(self):
        return self._read(), None

    def _formatter(self, boxed: bool = False) -> Callable[[Any], str]:
        return str if boxed or self._dtype.field == "text" else repr

    def _reduce(self, name: str, *, skipna: bool = True, keepdims: bool = False, **kwargs):
        result = getattr(pd.Series(self._read(), dtype=object), name)(skipna=skipna, **kwargs)
        return np.array([result], dtype=object) if keepdims else result

    # Terms compare like an object column: a tuple on the other side is one value.
    def _compare(self, other, op) -> np.ndarray:
        if isinstance(other, (pd.Series, pd.Index, pd.DataFrame)):
            return NotImplemented
        values = self._read()
        if is_list_like(other) and not isinstance(other, (tuple, dict, str)):
            other = np.asarray(other, dtype=object)
            return np.array([bool(op(a, b)) for a, b in zip(values, other)], dtype=bool)
        return np.array([bool(op(a, other)) for a in values], dtype=bool)

    def __eq__(self, other):  # type: ignore[override]
        return self._compare(other, operator.eq)

    def __ne__(self, other):  # type: ignore[override]
        return self._compare(other, operator.ne)


def materialize(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every payload column read into a plain object column."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, PayloadDtype):
            out[column] = pd.Series(np.asarray(out[column].array), index=out.index, dtype=object)
    return out
