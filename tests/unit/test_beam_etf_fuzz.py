"""Fuzz the decoder with mutated real captures from OTP 25 and OTP 28.

Whatever the bytes, decode either returns a term or raises DecodeError:
nothing else escapes, nothing hangs, and memory stays proportional to the
input (a forged length field must not allocate what it claims).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microscope_jupyter.beam.etf import decode, encode
from microscope_jupyter.errors import DecodeError
from strict import same_term

CAPTURES = [
    (line.split("\t")[0], bytes.fromhex(line.split("\t")[1]))
    for line in (Path(__file__).parent.parent / "data" / "etf_captures.txt").read_text().splitlines()
    if "\t" in line
]


def test_every_capture_decodes_and_reencodes_to_an_equal_term():
    assert len(CAPTURES) >= 100
    for label, raw in CAPTURES:
        term = decode(raw)
        assert same_term(decode(encode(term)), term), label


@st.composite
def mutated(draw):
    _, raw = draw(st.sampled_from(CAPTURES))
    data = bytearray(raw)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "huge_len"]))
        pos = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(min_value=0, max_value=255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(min_value=1, max_value=8))]
        elif op == "huge_len":
            data[pos:pos + 4] = b"\xff\xff\xff\xf0"
    return bytes(data)


def _decode_within_budget(data: bytes) -> None:
    tracemalloc.start()
    try:
        try:
            decode(data)
        except DecodeError:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Terms cost more than their bytes in Python (a 1-byte int is a 28-byte
    # object in a list), but never more than a fixed multiple plus slack.
    assert peak < 400 * len(data) + 2_000_000, f"{peak} bytes for a {len(data)}-byte input"


@given(mutated())
@settings(max_examples=1500, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_captures_only_raise_decode_error(data):
    _decode_within_budget(data)


@given(st.binary(max_size=300))
@settings(max_examples=1000, deadline=2000)
def test_random_bytes_after_the_version_byte(data):
    _decode_within_budget(b"\x83" + data)


@pytest.mark.parametrize("label, raw", CAPTURES[:20])
def test_every_truncation_of_a_capture_is_a_clean_error(label, raw):
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            decode(raw[:cut])
