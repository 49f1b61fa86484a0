"""Hypothesis strategies for Erlang terms as microscope_jupyter represents them."""

from __future__ import annotations

from hypothesis import strategies as st

from microscope_jupyter.beam.terms import Atom, BitBinary, ImproperList

atoms = st.text(min_size=0, max_size=40).filter(
    lambda s: s not in ("true", "false", "nil")).map(Atom)
integers = st.one_of(
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=-(1 << 31), max_value=(1 << 31) - 1),
    st.integers(min_value=-(1 << 600), max_value=1 << 600),
)
floats = st.floats(allow_nan=False, allow_infinity=False)
texts = st.text(max_size=60)
# Binaries that are not valid UTF-8 stay bytes; valid ones decode to str.
raw_bytes = st.binary(max_size=60).filter(lambda b: not is_utf8(b))
bitstrings = st.builds(
    lambda data, bits: BitBinary(data[:-1] + bytes([data[-1] & (0xFF << (8 - bits)) & 0xFF]), bits),
    st.binary(min_size=1, max_size=20), st.integers(min_value=1, max_value=7))

scalars = st.one_of(atoms, integers, floats, texts, raw_bytes, bitstrings,
                    st.booleans(), st.none())
# Keys that a Python dict keeps apart exactly as an Erlang map does.
map_keys = st.one_of(atoms, st.integers(min_value=-(1 << 70), max_value=1 << 70), texts,
                     st.tuples(atoms, st.integers(min_value=0, max_value=10)))


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _containers(children):
    return st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=6).map(tuple),
        st.dictionaries(map_keys, children, max_size=5),
        st.builds(ImproperList, st.lists(children, min_size=1, max_size=4),
                  st.one_of(atoms, integers, texts)),
    )


terms = st.recursive(scalars, _containers, max_leaves=25)
