"""PayloadArray behaves as an object column to pandas while decoding only
the rows that are read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from microscope_jupyter.beam.etf import encode
from microscope_jupyter.beam.terms import Atom, Pid
from microscope_jupyter.store.event_store import EventStore
from microscope_jupyter.store.lazy import PayloadArray, PayloadDtype, materialize
from microscope_jupyter.store.schema import HEADER_DTYPE, KIND_CODES

NODE = "lazy@host"


def batch_of(payloads: list, ts0: int = 0) -> tuple[bytes, bytes, list]:
    """One agent batch: a send event per payload (None: an event with no payload)."""
    headers = np.zeros(len(payloads), dtype=HEADER_DTYPE)
    headers["kind"] = KIND_CODES["send"]
    headers["pid"] = 1
    headers["ts"] = ts0 + np.arange(len(payloads)) * 1000
    blob = bytearray()
    for i, term in enumerate(payloads):
        raw = b"" if term is None else encode(term)
        headers["pay_off"][i], headers["pay_len"][i] = len(blob), len(raw)
        blob += raw
    return headers.tobytes(), bytes(blob), [(1, Pid(Atom(NODE), 100, 0, 1))]


def store_of(payloads: list) -> EventStore:
    store = EventStore()
    store.add_source("s", NODE, 0, 10**9)
    store.append_batch("s", *batch_of(payloads))
    return store


class CountingRenderer:
    """Wraps the store's renderer to count how many payloads were decoded."""

    def __init__(self, store: EventStore):
        self.inner = store._renderer
        self.decoded = 0
        store._renderer = self

    def pair(self, kind, raw, flags):
        self.decoded += 1
        return self.inner.decode_payload(kind, raw, flags)


TERMS = [(Atom("tick"), i) for i in range(50)] + [None, {Atom("a"): 1}, "text", [1, 2]]


@pytest.fixture
def frame_and_counter():
    store = store_of(TERMS)
    counter = CountingRenderer(store)
    return store.frame(), counter


def test_building_and_filtering_decodes_nothing(frame_and_counter):
    frame, counter = frame_and_counter
    picked = frame[frame["seq"] % 7 == 0].iloc[2:5]
    _ = pd.concat([picked, frame.tail(3)])
    assert counter.decoded == 0
    assert picked["term"].tolist() == [TERMS[14], TERMS[21], TERMS[28]]
    assert counter.decoded == 3


def test_values_match_the_terms_and_renderings(frame_and_counter):
    frame, _ = frame_and_counter
    assert frame["term"].tolist() == TERMS
    assert frame["text"].iloc[0] == "{:tick, 0}"
    assert frame["text"].iloc[50] is None and frame["term"].iloc[-1] == [1, 2]
    assert frame["term"].iloc[-2] == "text"


def test_pandas_operations_on_lazy_columns(frame_and_counter):
    frame, _ = frame_and_counter
    text = frame["text"]
    assert text.str.startswith("{:tick").sum() == 50
    assert (text == "{:tick, 3}").sum() == 1 and (text != "{:tick, 3}").sum() == len(TERMS) - 1
    assert (frame["term"] == (Atom("tick"), 4)).tolist().index(True) == 4   # a tuple is one value
    assert text.isna().sum() == 1 and text.dropna().size == len(TERMS) - 1
    assert text.isin(["{:tick, 1}", "{:tick, 2}"]).sum() == 2
    assert text.value_counts().max() == 1
    assert frame.groupby("text").size().sum() == len(TERMS) - 1
    assert text.sort_values().iloc[0] == '"text"'
    taken = frame["term"].array.take([3, -1, 0], allow_fill=True)
    assert list(taken) == [TERMS[3], None, TERMS[0]]
    changed = frame.copy()
    changed.loc[0, "text"] = "edited"
    assert changed["text"].iloc[0] == "edited" and frame["text"].iloc[0] == "{:tick, 0}"
    assert "{:tick, 0}" in repr(frame[["seq", "text"]].head())
    assert "{:tick, 0}" in frame[["seq", "text", "term"]].head()._repr_html_()


def test_materialize_gives_plain_object_columns(frame_and_counter):
    frame, _ = frame_and_counter
    plain = materialize(frame)
    assert plain["term"].dtype == object and plain["term"].tolist() == TERMS
    assert isinstance(frame["term"].dtype, PayloadDtype)


def test_arrays_from_values_and_dtype_names():
    array = PayloadArray._from_sequence(["a", None], dtype=PayloadDtype("text"))
    assert list(array) == ["a", None] and array.isna().tolist() == [False, True]
    assert PayloadDtype.construct_from_string("payload[text]") == PayloadDtype("text")
    with pytest.raises(TypeError):
        PayloadDtype.construct_from_string("payload[other]")
    with pytest.raises(ValueError):
        PayloadDtype("other")


def test_the_memo_stays_within_its_budget():
    store = store_of([(Atom("tick"), i) for i in range(200)])
    store._renderer.max_bytes = 2_000
    assert len(store.frame()["text"].tolist()) == 200
    assert store._renderer.memo_bytes <= 2_000


def test_payload_keys_are_equal_exactly_for_equal_payloads():
    long = {Atom("blob"): "x" * 100}     # past the width hashed in numpy
    terms = [(Atom("tick"), 1), (Atom("tick"), 2), (Atom("tick"), 1), long, dict(long),
             Atom("timeout"), (Atom("tick"), 1, 0)]
    store = store_of(terms[:4])
    store.append_batch("s", *batch_of(terms[4:], ts0=10_000))   # a second chunk
    raw = store.raw()
    keys = raw.payload_keys(np.arange(len(terms)))
    assert keys[0] == keys[2] and keys[3] == keys[4]
    assert len({keys[0], keys[1], keys[3], keys[5], keys[6]}) == 5
    assert raw.payload_keys(np.array([2, 0])).tolist() == [keys[2], keys[0]]


def test_every_spelling_of_timeout_shares_one_key():
    from microscope_jupyter.store.columns import bytes_key
    from microscope_jupyter.store.otp import TIMEOUT_PAYLOADS
    assert len(TIMEOUT_PAYLOADS) > 1
    store = EventStore()
    store.add_source("s", NODE, 0, 10**9)
    spellings = sorted(TIMEOUT_PAYLOADS)
    headers = np.zeros(len(spellings), dtype=HEADER_DTYPE)
    headers["kind"] = KIND_CODES["send"]
    headers["pay_len"] = [len(p) for p in spellings]
    headers["pay_off"] = np.cumsum([0] + [len(p) for p in spellings])[:-1]
    store.append_batch("s", headers.tobytes(), b"".join(spellings), [])
    from microscope_jupyter.store.joins import _payload_keys
    keys = _payload_keys(store, pd.Series(np.arange(len(spellings))))
    assert len(set(keys.tolist())) == 1
    assert len({bytes_key(p) for p in spellings}) == len(spellings)   # raw keys differ
