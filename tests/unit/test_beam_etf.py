"""The ETF codec on its own: exact bytes, round trips, caps and errors."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microscope_jupyter.beam import etf
from microscope_jupyter.beam.etf import decode, encode
from microscope_jupyter.beam.terms import (Atom, BitBinary, ExportFun, Fun, ImproperList,
                                           MapPairs, Pid, Port, Reference)
from microscope_jupyter.errors import DecodeError, EncodeError
from strategies import is_utf8, terms
from strict import same_term

NODE = Atom("demo@host")


@given(terms)
@settings(max_examples=400, deadline=None)
def test_every_term_round_trips(term):
    assert same_term(decode(encode(term)), term)


@pytest.mark.parametrize("term, expected", [
    # Bytes produced by OTP 25's term_to_binary for the same values.
    (1, b"\x83a\x01"),
    (-1, b"\x83b\xff\xff\xff\xff"),
    (1 << 64, b"\x83n\x09\x00" + b"\x00" * 8 + b"\x01"),
    ([1, 2, 3], b"\x83k\x00\x03\x01\x02\x03"),
    ([], b"\x83j"),
    ("héllo", b"\x83m\x00\x00\x00\x06h\xc3\xa9llo"),
    ((Atom("ok"), None), b"\x83h\x02w\x02okw\x03nil"),
    (1.5, b"\x83F?\xf8\x00\x00\x00\x00\x00\x00"),
])
def test_encoding_matches_term_to_binary(term, expected):
    assert encode(term) == expected


def test_atoms_are_not_strings():
    decoded = decode(encode({Atom("ok"): 1, "ok": 2}))
    assert decoded == {Atom("ok"): 1, "ok": 2}
    # equal text, never equal: a dict or a set keeps them apart (they may share a hash)
    assert Atom("ok") != "ok" and len({Atom("ok"), "ok"}) == 2


def test_booleans_and_nil_map_to_python():
    assert decode(encode((True, False, None))) == (True, False, None)
    assert encode(True) == b"\x83w\x04true"


def test_binaries_become_text_only_when_utf8():
    assert decode(b"\x83m\x00\x00\x00\x02hi") == "hi"
    assert decode(b"\x83m\x00\x00\x00\x02\xff\xfe") == b"\xff\xfe"


def test_map_with_keys_python_would_merge_keeps_every_pair():
    raw = encode(MapPairs(((1, "int"), (1.0, "float"), (True, "atom"))))
    decoded = decode(raw)
    assert isinstance(decoded, MapPairs)
    assert len(decoded) == 3
    assert encode(decoded) == raw


def test_map_with_unhashable_keys():
    raw = encode(MapPairs((([1, 2], "list key"), ({"a": 1}, "map key"))))
    decoded = decode(raw)
    assert isinstance(decoded, MapPairs) and decoded.pairs[0] == ([1, 2], "list key")


def test_identifiers_round_trip():
    values = [
        Pid(NODE, 123, 0, 0x1234_5678),
        Port(NODE, 7, 3),
        Port(NODE, 1 << 40, 3),  # needs V4_PORT_EXT
        Reference(NODE, 9, (1, 2, 3)),
        Reference(NODE, 9, (1, 2, 3, 4, 5)),
        ExportFun(Atom("lists"), Atom("map"), 2),
        Fun(Atom("erl_eval"), 1, b"u" * 16, 5, 6, 7, Pid(NODE, 1, 0, 1), (1, "free")),
    ]
    for value in values:
        assert decode(encode(value)) == value
    assert encode(Port(NODE, 1 << 40, 3))[1] == etf.V4_PORT


def test_legacy_forms_decode():
    node = b"s\x04demo"  # SMALL_ATOM_EXT
    assert decode(b"\x83g" + node + struct.pack(">IIB", 5, 1, 2)) == Pid(Atom("demo"), 5, 1, 2)
    assert decode(b"\x83f" + node + struct.pack(">IB", 5, 2)) == Port(Atom("demo"), 5, 2)
    assert decode(b"\x83e" + node + struct.pack(">IB", 5, 2)) == Reference(Atom("demo"), 2, (5,))
    assert decode(b"\x83r\x00\x02" + node + b"\x01" + struct.pack(">II", 5, 6)) == \
        Reference(Atom("demo"), 1, (5, 6))
    text = b"1.50000000000000000000e+00".ljust(31, b"\0")
    assert decode(b"\x83c" + text) == 1.5
    assert decode(b"\x83d\x00\x02ok") == Atom("ok")


def test_improper_list_and_bitstring():
    assert decode(encode(ImproperList([1, 2], 3))) == ImproperList([1, 2], 3)
    bits = BitBinary(b"\xa0", 3)
    assert decode(encode(bits)) == bits
    # unused low bits are ignored, as Erlang does
    assert decode(b"\x83M\x00\x00\x00\x01\x03\xbf") == BitBinary(b"\xa0", 3)
    # a full last byte is an ordinary binary
    assert decode(b"\x83M\x00\x00\x00\x01\x08A") == "A"


def test_compressed_term():
    inner = encode(list(range(1000)))[1:]
    raw = b"\x83P" + struct.pack(">I", len(inner)) + zlib.compress(inner)
    assert decode(raw) == list(range(1000))


@pytest.mark.parametrize("raw, fragment", [
    (b"", "no term at offset 0"),
    (b"\x82a\x01", "version byte 131"),
    (b"\x83", "input ends where a term should start"),
    (b"\x83\xfe", "unknown tag 254"),
    (b"\x83R\x00", "atom cache"),
    (b"\x83l\xff\xff\xff\xffj", "needs 4294967296 bytes"),
    (b"\x83m\x7f\xff\xff\xff", "binary needs 2147483647 bytes"),
    (b"\x83t\xff\xff\xff\xff", "map pairs"),
    (b"\x83o\xff\xff\xff\xff\x00", "exceeds the 1048576-byte cap"),
    (b"\x83n\x01\x02\x05", "sign byte"),
    (b"\x83F\x7f\xf0\x00\x00\x00\x00\x00\x00", "finite"),
    (b"\x83a\x01\x00", "1 trailing bytes"),
    (b"\x83P\xff\xff\xff\xff", "over the"),
    (b"\x83Z\x00\x09s\x01a\x00\x00\x00\x00", "1 to 5"),
    (b"\x83M\x00\x00\x00\x01\x09\x00", "bits in last byte"),
])
def test_malformed_input_names_offset_and_cause(raw, fragment):
    with pytest.raises(DecodeError) as info:
        decode(raw)
    assert fragment in str(info.value)
    assert "offset" in str(info.value)


def test_unknown_tag_reports_tag_and_offset():
    with pytest.raises(DecodeError) as info:
        decode(b"\x83h\x02a\x01\xfe")
    assert info.value.tag == 0xFE and info.value.offset == 5


def test_depth_is_capped():
    deep = b"\x83" + b"h\x01" * 10_000 + b"j"
    with pytest.raises(DecodeError, match="nesting deeper"):
        decode(deep)
    assert decode(b"\x83" + b"h\x01" * 200 + b"j") is not None


def test_zip_bomb_is_refused_without_inflating():
    inner = b"k\xff\xff" + b"\0" * 0xFFFF
    bomb = b"\x83P" + struct.pack(">I", 100) + zlib.compress(inner * 100)
    with pytest.raises(DecodeError, match="different size"):
        decode(bomb)


@pytest.mark.parametrize("value", [object(), {1, 2}, float("nan"), Atom("x" * 256)])
def test_unencodable_values_raise_encode_error(value):
    with pytest.raises(EncodeError):
        encode(value)


def test_self_referencing_value_is_refused():
    loop: list = []
    loop.append(loop)
    with pytest.raises(EncodeError, match="self-referencing"):
        encode(loop)


@given(st.binary(max_size=64))
def test_a_binary_decoded_as_text_or_bytes_gives_its_bytes_back(raw):
    """The codec reads a valid UTF-8 binary as str (an Elixir string) and any
    other as bytes; binary_bytes is the one way back to the node's bytes."""
    decoded = decode(encode(raw))
    assert isinstance(decoded, str) == is_utf8(raw)
    assert etf.binary_bytes(decoded) == raw
