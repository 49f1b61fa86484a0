"""The lazy ``term``/``text`` columns read exactly what an eager decode reads,
on a real recording (calls, casts, infos, timers, sleeps, tasks, states,
sends to names, a timeout message).

The reference decodes every event's raw payload itself, one by one, with the
renderer's own decoder: a path that shares no code with ``store.lazy``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import microscope_jupyter as mic
from microscope_jupyter.store.frame import PayloadRenderer
from microscope_jupyter.store.lazy import PayloadDtype, materialize
from nodes import load_test_module


@pytest.fixture(scope="module")
def recorded(node_factory, tmp_path_factory):
    node = node_factory("otp25", prefix="lazy")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_test_module(s, "mic_load", tmp_path_factory.mktemp("lazy"))
        s.rpc("mic_load", "start_healthy", [])
        rec = s.trace()
        time.sleep(1.5)
        rec.eval_traced("mic_ticker ! timeout.", lang="erlang")
        time.sleep(0.3)
        rec.stop()
        s.rpc("mic_load", "stop_healthy", [])
        yield s
    node.stop()


def eager(store, seqs, field: str) -> list:
    """Each event's term or text, decoded here, row by row."""
    renderer = PayloadRenderer(store.syntax, store.text_limit)
    raw = store.raw()
    out = []
    for seq in seqs:
        kind, length = int(raw.kind[seq]), int(raw.pay_len[seq])
        if length:
            term, text = renderer.decode_payload(kind, raw.payload(seq), int(raw.flags[seq]))
        elif kind in (15, 25):   # dropped, mailbox: the count is the value
            aux = int(raw.aux[seq])
            term, text = aux, (f"{aux} events dropped by the agent" if kind == 15
                               else f"{aux} messages queued")
        else:
            term, text = None, None
        out.append(term if field == "term" else text)
    return out


def test_events_read_lazily_equal_an_eager_decode(recorded):
    s = recorded
    events = s.events
    assert isinstance(events["term"].dtype, PayloadDtype)
    assert len(events) > 500 and (events["kind"] == "state").sum() > 20
    seqs = events["seq"].tolist()
    assert events["term"].tolist() == eager(s.store, seqs, "term")
    assert events["text"].tolist() == eager(s.store, seqs, "text")


def test_filters_slices_and_string_methods_read_the_right_rows(recorded):
    s = recorded
    events = s.events
    states = events[events["kind"] == "state"]
    tail = states.iloc[-7:]
    assert tail["text"].tolist() == eager(s.store, tail["seq"].tolist(), "text")
    assert states["term"].iloc[3] == eager(s.store, [int(states["seq"].iloc[3])], "term")[0]
    hits = events[events["text"].str.contains("timeout", na=False)]
    expected = [seq for seq, text in zip(events["seq"], eager(s.store, events["seq"], "text"))
                if text is not None and "timeout" in text]
    assert hits["seq"].tolist() == expected and expected
    counts = events["text"].value_counts()
    assert counts.sum() == events["text"].notna().sum()
    shuffled = events.sample(frac=1.0, random_state=3)
    assert shuffled["text"].tolist() == eager(s.store, shuffled["seq"].tolist(), "text")
    both = pd.concat([states.head(3), events.tail(2)])
    assert both["text"].tolist() == eager(s.store, both["seq"].tolist(), "text")


def test_messages_carry_the_terms_of_their_sends_and_receives(recorded):
    s = recorded
    messages = s.messages()
    assert isinstance(messages["text"].dtype, PayloadDtype)
    sent = messages[messages["send_seq"].notna()]
    assert sent["text"].tolist() == eager(s.store, sent["send_seq"].astype(np.int64), "text")
    orphans = messages[messages["send_seq"].isna()]
    assert orphans["term"].tolist() == eager(s.store, orphans["receive_seq"].astype(np.int64),
                                             "term")
    timeout = messages[messages["text"] == ":timeout"]
    assert len(timeout) == 1 and (timeout["status"] == "delivered").all()
    plain = materialize(messages)
    assert plain["text"].dtype == object and plain["text"].tolist() == messages["text"].tolist()

