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


def store_of(payloads: list) -> EventStore:
    """A store with one send event per payload (None: an event with no payload)."""
    store = EventStore()
    pid = Pid(Atom(NODE), 100, 0, 1)
    store.add_source("s", NODE, 0, 10**9)
    headers = np.zeros(len(payloads), dtype=HEADER_DTYPE)
    headers["kind"] = KIND_CODES["send"]
    headers["pid"] = 1
    headers["ts"] = np.arange(len(payloads)) * 1000
    blob = bytearray()
    for i, term in enumerate(payloads):
        raw = b"" if term is None else encode(term)
        headers["pay_off"][i], headers["pay_len"][i] = len(blob), len(raw)
        blob += raw
    store.append_batch("s", headers.tobytes(), bytes(blob), [(1, pid)])
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
