"""Erlang external term format: decode and encode.

    >>> encode((Atom("ok"), [1, 2, 3], {"count": 1}))
    b'\\x83h\\x02w\\x02okk\\x00\\x03\\x01\\x02\\x03t\\x00\\x00\\x00\\x01m\\x00\\x00\\x00\\x05counta\\x01'
    >>> decode(_)
    (Atom('ok'), [1, 2, 3], {'count': 1})

The decoder walks a memoryview with an offset and precompiled structs and
never slices the remaining input, so decoding is linear in the input. It
trusts nothing: every length field is checked against the bytes that are
left *before* anything is allocated, nesting depth is capped, compressed
terms are inflated only up to their declared (and capped) size, and every
failure surfaces as ``DecodeError`` naming the offset and the tag. Source
of truth: OTP's ``erts/doc/guides/erl_ext_dist.md``.
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from typing import Any, Callable

from ..errors import DecodeError, EncodeError
from .terms import (Atom, BitBinary, ExportFun, Fun, ImproperList, MapPairs,
                    Pid, Port, Reference)

__all__ = ["decode", "decode_from", "encode", "encode_into", "Limits", "binary_bytes", "as_text"]

VERSION = 131

# Tags (erl_ext_dist.md)
NEW_FLOAT = 70
BIT_BINARY = 77
COMPRESSED = 80
ATOM_CACHE_REF = 82
NEW_PID = 88
NEW_PORT = 89
NEWER_REFERENCE = 90
SMALL_INTEGER = 97
INTEGER = 98
FLOAT = 99
ATOM = 100
REFERENCE = 101
PORT = 102
PID = 103
SMALL_TUPLE = 104
LARGE_TUPLE = 105
NIL = 106
STRING = 107
LIST = 108
BINARY = 109
SMALL_BIG = 110
LARGE_BIG = 111
NEW_FUN = 112
EXPORT = 113
NEW_REFERENCE = 114
SMALL_ATOM = 115
MAP = 116
ATOM_UTF8 = 118
SMALL_ATOM_UTF8 = 119
V4_PORT = 120
LOCAL = 121

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")
_U32_U32 = struct.Struct(">II")
_U32_U32_U32 = struct.Struct(">III")
_U32_U32_U8 = struct.Struct(">IIB")
_U32_U8 = struct.Struct(">IB")
_U64_U32 = struct.Struct(">QI")
_FUN_HEAD = struct.Struct(">IB16sII")  # size, arity, uniq, index, num_free

_TRUE, _FALSE, _NIL = Atom("true"), Atom("false"), Atom("nil")
_ATOMS_SEEN: dict[tuple[int, bytes], Any] = {}


class Limits:
    """Caps that keep a hostile or corrupt input from costing more than it weighs.

    max_depth         nesting of tuples/lists/maps/funs      (default 250)
    max_atom_chars    Erlang's own limit                     (default 255)
    max_bignum_bytes  digits of one integer                  (default 1 MiB)
    max_inflated      uncompressed size of a COMPRESSED term (default 64 MiB)
    """

    __slots__ = ("max_depth", "max_atom_chars", "max_bignum_bytes", "max_inflated")

    def __init__(self, max_depth: int = 250, max_atom_chars: int = 255,
                 max_bignum_bytes: int = 1 << 20, max_inflated: int = 64 << 20):
        self.max_depth = max_depth
        self.max_atom_chars = max_atom_chars
        self.max_bignum_bytes = max_bignum_bytes
        self.max_inflated = max_inflated


DEFAULT_LIMITS = Limits()

# Each nesting level costs about four Python frames. Make sure the default
# depth cap, not the interpreter, is what a deep term runs into; only ever
# raise the limit, never lower what the host application chose.
_FRAMES_PER_LEVEL = 5
if sys.getrecursionlimit() < DEFAULT_LIMITS.max_depth * _FRAMES_PER_LEVEL + 500:
    sys.setrecursionlimit(DEFAULT_LIMITS.max_depth * _FRAMES_PER_LEVEL + 500)


# ---------------------------------------------------------------- DECODING


def decode(data: bytes | bytearray | memoryview, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode one whole ``term_to_binary`` result (leading 131 included)."""
    term, end = decode_from(data, 0, limits)
    if end != len(data):
        raise DecodeError(f"{len(data) - end} trailing bytes after the term at offset {end}; "
                          "the input holds more than one term or is corrupt",
                          offset=end)
    return term


def decode_from(data: bytes | bytearray | memoryview, offset: int = 0,
                limits: Limits = DEFAULT_LIMITS) -> tuple[Any, int]:
    """Decode the versioned term starting at ``offset``; return it and the end offset."""
    view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data.cast("B")
    if offset >= len(view):
        raise DecodeError(f"no term at offset {offset}: the input ends there", offset=offset)
    if view[offset] != VERSION:
        raise DecodeError(f"expected the version byte 131 at offset {offset}, got {view[offset]}",
                          offset=offset, tag=view[offset])
    decoder = _Decoder(view, offset + 1, limits)
    try:
        if decoder.offset < len(view) and view[decoder.offset] == COMPRESSED:
            term = decoder.compressed()
        else:
            term = decoder.term(0)
    except DecodeError:
        raise
    except (struct.error, IndexError) as exc:
        raise DecodeError(f"input ends in the middle of a term near offset {decoder.offset}",
                          offset=decoder.offset) from exc
    except RecursionError as exc:
        raise DecodeError(f"term nests too deeply near offset {decoder.offset}",
                          offset=decoder.offset) from exc
    return term, decoder.offset


class _Decoder:
    __slots__ = ("view", "offset", "limits")

    def __init__(self, view: memoryview, offset: int, limits: Limits):
        self.view = view
        self.offset = offset
        self.limits = limits

    # -- plumbing

    def fail(self, message: str, tag: int | None = None, at: int | None = None) -> DecodeError:
        where = self.offset if at is None else at
        name = f" (tag {tag})" if tag is not None else ""
        return DecodeError(f"malformed term at offset {where}{name}: {message}", offset=where, tag=tag)

    def need(self, n: int, tag: int, what: str, count: int | None = None) -> None:
        # Checked before any allocation so a forged length costs nothing.
        # ``what`` may hold "{count}": formatted only on failure, off the hot path.
        if n < 0 or self.offset + n > len(self.view):
            what = what.format(count=count) if count is not None else what
            raise self.fail(f"{what} needs {n} bytes but only {len(self.view) - self.offset} remain",
                            tag)

    def take(self, n: int, tag: int, what: str) -> bytes:
        self.need(n, tag, what)
        start = self.offset
        self.offset = start + n
        return self.view[start:self.offset].tobytes()

    def unpack(self, st: struct.Struct, tag: int, what: str) -> tuple:
        self.need(st.size, tag, what)
        values = st.unpack_from(self.view, self.offset)
        self.offset += st.size
        return values

    def term(self, depth: int) -> Any:
        # The hot path of every decode: small integers and atoms (most of any
        # message) are read here without a handler call.
        if depth > self.limits.max_depth:
            raise self.fail(f"nesting deeper than {self.limits.max_depth} levels")
        view = self.view
        offset = self.offset
        if offset >= len(view):
            raise self.fail("input ends where a term should start")
        tag = view[offset]
        if tag == SMALL_INTEGER and offset + 1 < len(view):
            self.offset = offset + 2
            return view[offset + 1]
        if tag == SMALL_ATOM_UTF8 and offset + 1 < len(view) and self.limits is DEFAULT_LIMITS:
            end = offset + 2 + view[offset + 1]
            cached = _ATOMS_SEEN.get((tag, view[offset + 2:end].tobytes()))
            if cached is not None and end <= len(view):
                self.offset = end
                return cached
        handler = _HANDLERS[tag]
        if handler is None:
            raise self.fail(_unknown_tag_message(tag), tag)
        self.offset = offset + 1
        return handler(self, tag, depth)

    def atom_term(self, depth: int, what: str) -> Atom:
        at = self.offset
        value = self.term(depth + 1)
        if value is True:
            return _TRUE
        if value is False:
            return _FALSE
        if value is None:
            return _NIL
        if not isinstance(value, Atom):
            raise self.fail(f"{what} must be an atom", at=at)
        return value

    def int_term(self, depth: int, what: str) -> int:
        at = self.offset
        value = self.term(depth + 1)
        if type(value) is not int:
            raise self.fail(f"{what} must be an integer", at=at)
        return value

    # -- numbers

    def _small_integer(self, tag: int, depth: int) -> int:
        value = self.view[self.offset]
        self.offset += 1
        return value

    def _integer(self, tag: int, depth: int) -> int:
        return self.unpack(_I32, tag, "INTEGER_EXT")[0]

    def _new_float(self, tag: int, depth: int) -> float:
        value = self.unpack(_F64, tag, "NEW_FLOAT_EXT")[0]
        if not math.isfinite(value):
            raise self.fail("Erlang floats are finite; got NaN or infinity", tag)
        return value

    def _float(self, tag: int, depth: int) -> float:
        raw = self.take(31, tag, "FLOAT_EXT").split(b"\0", 1)[0]
        try:
            value = float(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise self.fail("FLOAT_EXT text is not a number", tag) from None
        if not math.isfinite(value):
            raise self.fail("Erlang floats are finite; got NaN or infinity", tag)
        return value

    def _small_big(self, tag: int, depth: int) -> int:
        n = self.view[self.offset]
        self.offset += 1
        return self._big_digits(n, tag)

    def _large_big(self, tag: int, depth: int) -> int:
        n = self.unpack(_U32, tag, "LARGE_BIG_EXT")[0]
        if n > self.limits.max_bignum_bytes:
            raise self.fail(f"integer of {n} bytes exceeds the {self.limits.max_bignum_bytes}-byte cap",
                            tag)
        return self._big_digits(n, tag)

    def _big_digits(self, n: int, tag: int) -> int:
        self.need(1 + n, tag, "bignum")
        sign = self.view[self.offset]
        if sign > 1:
            raise self.fail(f"bignum sign byte must be 0 or 1, got {sign}", tag)
        start = self.offset + 1
        self.offset = start + n
        magnitude = int.from_bytes(self.view[start:self.offset], "little")
        return -magnitude if sign else magnitude

    # -- atoms

    def _atom16(self, tag: int, depth: int) -> Any:
        n = self.unpack(_U16, tag, "atom length")[0]
        return self._atom_text(n, tag)

    def _atom8(self, tag: int, depth: int) -> Any:
        n = self.view[self.offset]
        self.offset += 1
        return self._atom_text(n, tag)

    def _atom_text(self, n: int, tag: int) -> Any:
        raw = self.take(n, tag, "atom text")
        if self.limits is not DEFAULT_LIMITS:
            return self._new_atom(raw, tag)
        cached = _ATOMS_SEEN.get((tag, raw))
        if cached is not None:
            return cached
        value = self._new_atom(raw, tag)
        if len(_ATOMS_SEEN) < 65536:  # atoms repeat; the node has a bounded set anyway
            _ATOMS_SEEN[(tag, raw)] = value
        return value

    def _new_atom(self, raw: bytes, tag: int) -> Any:
        try:
            # ATOM_EXT/SMALL_ATOM_EXT are Latin-1; the _UTF8 forms are UTF-8.
            text = raw.decode("latin-1" if tag in (ATOM, SMALL_ATOM) else "utf-8")
        except UnicodeDecodeError:
            raise self.fail("atom text is not valid UTF-8", tag) from None
        if len(text) > self.limits.max_atom_chars:
            raise self.fail(f"atom of {len(text)} characters exceeds {self.limits.max_atom_chars}",
                            tag)
        if text == "true":
            return True
        if text == "false":
            return False
        if text == "nil":
            return None
        return Atom(text)

    # -- containers

    def _small_tuple(self, tag: int, depth: int) -> tuple:
        n = self.view[self.offset]
        self.offset += 1
        return self._elements(n, tag, depth)

    def _large_tuple(self, tag: int, depth: int) -> tuple:
        n = self.unpack(_U32, tag, "LARGE_TUPLE_EXT")[0]
        return self._elements(n, tag, depth)

    def _elements(self, n: int, tag: int, depth: int) -> tuple:
        self.need(n, tag, "{count} elements", n)  # each element takes at least one byte
        term = self.term
        return tuple([term(depth + 1) for _ in range(n)])

    def _nil(self, tag: int, depth: int) -> list:
        return []

    def _string(self, tag: int, depth: int) -> list:
        n = self.unpack(_U16, tag, "STRING_EXT")[0]
        self.need(n, tag, "STRING_EXT bytes")
        start = self.offset
        self.offset = start + n
        return list(self.view[start:self.offset])

    def _list(self, tag: int, depth: int) -> Any:
        n = self.unpack(_U32, tag, "LIST_EXT")[0]
        self.need(n + 1, tag, "{count} list elements and a tail", n)
        term = self.term
        items = [term(depth + 1) for _ in range(n)]
        tail = term(depth + 1)
        if isinstance(tail, list) and not tail:
            return items
        if n == 0:
            raise self.fail("a list with no elements must be NIL_EXT", tag)
        return ImproperList(items, tail)

    def _map(self, tag: int, depth: int) -> Any:
        n = self.unpack(_U32, tag, "MAP_EXT")[0]
        self.need(2 * n, tag, "{count} map pairs", n)
        term = self.term
        pairs = [(term(depth + 1), term(depth + 1)) for _ in range(n)]
        try:
            result = dict(pairs)
        except TypeError:  # an unhashable key such as a list or map
            return MapPairs(tuple(pairs))
        if len(result) != n:  # keys equal in Python but distinct in Erlang (1 and 1.0)
            return MapPairs(tuple(pairs))
        return result

    # -- binaries

    def _binary(self, tag: int, depth: int) -> Any:
        n = self.unpack(_U32, tag, "BINARY_EXT")[0]
        return _text_or_bytes(self.take(n, tag, "binary"))

    def _bit_binary(self, tag: int, depth: int) -> Any:
        n, bits = self.unpack(_U32_U8, tag, "BIT_BINARY_EXT")
        if n == 0:
            if bits != 0:
                raise self.fail("an empty bitstring must have 0 bits in its last byte", tag)
            return ""
        if not 1 <= bits <= 8:
            raise self.fail(f"bits in last byte must be 1..8, got {bits}", tag)
        data = self.take(n, tag, "bitstring")
        if bits == 8:
            return _text_or_bytes(data)
        # Erlang ignores the unused low bits; zero them so equal values compare equal.
        mask = (0xFF << (8 - bits)) & 0xFF
        if data[-1] & ~mask:
            data = data[:-1] + bytes([data[-1] & mask])
        return BitBinary(data, bits)

    # -- identifiers

    def _new_pid(self, tag: int, depth: int) -> Pid:
        node = self.atom_term(depth, "pid node")
        pid_id, serial, creation = self.unpack(_U32_U32_U32, tag, "NEW_PID_EXT")
        return Pid(node, pid_id, serial, creation)

    def _pid(self, tag: int, depth: int) -> Pid:
        node = self.atom_term(depth, "pid node")
        pid_id, serial, creation = self.unpack(_U32_U32_U8, tag, "PID_EXT")
        return Pid(node, pid_id, serial, creation)

    def _new_port(self, tag: int, depth: int) -> Port:
        node = self.atom_term(depth, "port node")
        port_id, creation = self.unpack(_U32_U32, tag, "NEW_PORT_EXT")
        return Port(node, port_id, creation)

    def _port(self, tag: int, depth: int) -> Port:
        node = self.atom_term(depth, "port node")
        port_id, creation = self.unpack(_U32_U8, tag, "PORT_EXT")
        return Port(node, port_id, creation)

    def _v4_port(self, tag: int, depth: int) -> Port:
        node = self.atom_term(depth, "port node")
        port_id, creation = self.unpack(_U64_U32, tag, "V4_PORT_EXT")
        return Port(node, port_id, creation)

    def _newer_reference(self, tag: int, depth: int) -> Reference:
        n = self._ref_len(tag)
        node = self.atom_term(depth, "reference node")
        creation = self.unpack(_U32, tag, "reference creation")[0]
        return Reference(node, creation, self._ref_ids(n, tag))

    def _new_reference(self, tag: int, depth: int) -> Reference:
        n = self._ref_len(tag)
        node = self.atom_term(depth, "reference node")
        creation = self.unpack(_U8, tag, "reference creation")[0]
        return Reference(node, creation, self._ref_ids(n, tag))

    def _reference(self, tag: int, depth: int) -> Reference:
        node = self.atom_term(depth, "reference node")
        ref_id, creation = self.unpack(_U32_U8, tag, "REFERENCE_EXT")
        return Reference(node, creation, (ref_id,))

    def _ref_len(self, tag: int) -> int:
        n = self.unpack(_U16, tag, "reference length")[0]
        if not 1 <= n <= 5:
            raise self.fail(f"reference has {n} id words; Erlang uses 1 to 5", tag)
        return n

    def _ref_ids(self, n: int, tag: int) -> tuple[int, ...]:
        self.need(4 * n, tag, "reference ids")
        ids = struct.unpack_from(f">{n}I", self.view, self.offset)
        self.offset += 4 * n
        return ids

    # -- funs

    def _new_fun(self, tag: int, depth: int) -> Fun:
        start = self.offset - 1
        size, arity, uniq, index, num_free = self.unpack(_FUN_HEAD, tag, "NEW_FUN_EXT header")
        if size < 1 + _FUN_HEAD.size or start + 1 + size > len(self.view):
            raise self.fail(f"fun size {size} does not fit the input", tag, at=start)
        self.need(num_free, tag, f"{num_free} free variables")
        module = self.atom_term(depth, "fun module")
        old_index = self.int_term(depth, "fun old index")
        old_uniq = self.int_term(depth, "fun old uniq")
        at = self.offset
        pid = self.term(depth + 1)
        if not isinstance(pid, Pid):
            raise self.fail("fun creator must be a pid", at=at)
        free = tuple(self.term(depth + 1) for _ in range(num_free))
        if self.offset - (start + 1) != size:
            raise self.fail(f"fun declares {size} bytes but holds {self.offset - start - 1}", tag,
                            at=start)
        return Fun(module, arity, uniq, index, old_index, old_uniq, pid, free)

    def _export(self, tag: int, depth: int) -> ExportFun:
        module = self.atom_term(depth, "export module")
        function = self.atom_term(depth, "export function")
        arity = self.int_term(depth, "export arity")
        if not 0 <= arity <= 255:
            raise self.fail(f"export arity must be 0..255, got {arity}", tag)
        return ExportFun(module, function, arity)

    # -- whole-term forms

    def compressed(self) -> Any:
        tag = COMPRESSED
        self.offset += 1
        size = self.unpack(_U32, tag, "COMPRESSED header")[0]
        if size > self.limits.max_inflated:
            raise self.fail(f"compressed term inflates to {size} bytes, over the "
                            f"{self.limits.max_inflated}-byte cap", tag)
        inflater = zlib.decompressobj()
        try:
            inflated = inflater.decompress(self.view[self.offset:], size + 1)
        except zlib.error as exc:
            raise self.fail(f"zlib data is corrupt ({exc})", tag) from None
        if len(inflated) != size or not inflater.eof:
            raise self.fail(f"compressed term declares {size} bytes but inflates to a different size",
                            tag)
        self.offset = len(self.view) - len(inflater.unused_data)
        inner = _Decoder(memoryview(inflated), 0, self.limits)
        try:
            term = inner.term(0)
        except DecodeError as exc:
            raise DecodeError(f"inside a compressed term: {exc}", offset=self.offset,
                              tag=exc.tag) from None
        if inner.offset != size:
            raise self.fail("compressed term has trailing bytes", tag)
        return term


# One table for every decoder (built once: per-instance bound methods cost
# more than decoding a small term).
_DISPATCH: dict[int, Callable[[_Decoder, int, int], Any]] = {
    NEW_FLOAT: _Decoder._new_float,
    BIT_BINARY: _Decoder._bit_binary,
    NEW_PID: _Decoder._new_pid,
    PID: _Decoder._pid,
    NEW_PORT: _Decoder._new_port,
    PORT: _Decoder._port,
    V4_PORT: _Decoder._v4_port,
    NEWER_REFERENCE: _Decoder._newer_reference,
    NEW_REFERENCE: _Decoder._new_reference,
    REFERENCE: _Decoder._reference,
    SMALL_INTEGER: _Decoder._small_integer,
    INTEGER: _Decoder._integer,
    FLOAT: _Decoder._float,
    ATOM: _Decoder._atom16,
    ATOM_UTF8: _Decoder._atom16,
    SMALL_ATOM: _Decoder._atom8,
    SMALL_ATOM_UTF8: _Decoder._atom8,
    SMALL_TUPLE: _Decoder._small_tuple,
    LARGE_TUPLE: _Decoder._large_tuple,
    NIL: _Decoder._nil,
    STRING: _Decoder._string,
    LIST: _Decoder._list,
    BINARY: _Decoder._binary,
    SMALL_BIG: _Decoder._small_big,
    LARGE_BIG: _Decoder._large_big,
    NEW_FUN: _Decoder._new_fun,
    EXPORT: _Decoder._export,
    MAP: _Decoder._map,
}


# The same table as a list indexed by tag: the fastest lookup on the hot path.
_HANDLERS: list[Callable[[_Decoder, int, int], Any] | None] = [
    _DISPATCH.get(tag) for tag in range(256)]


def _text_or_bytes(raw: bytes) -> Any:
    # The one place text and bytes are told apart: a binary that is valid
    # UTF-8 is an Elixir string, and reads as str everywhere above; the rest
    # stays bytes. What needs the bytes whatever they hold (the agent's packed
    # batches and tables) takes them back with binary_bytes.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def as_text(value: Any) -> Any:
    """The codec's decision applied to a value built elsewhere: bytes that are
    valid UTF-8 as str, anything else as it is."""
    return _text_or_bytes(value) if isinstance(value, bytes) else value


def binary_bytes(value: str | bytes | bytearray | memoryview) -> bytes:
    """A decoded binary's bytes, whichever way ``decode`` gave it (str when
    it was valid UTF-8): the inverse of the codec's one text/bytes decision."""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _unknown_tag_message(tag: int) -> str:
    if tag == ATOM_CACHE_REF:
        return "atom cache references are not negotiated on this connection"
    if tag == LOCAL:
        return "LOCAL_EXT terms only decode on the node that made them"
    if tag == COMPRESSED:
        return "a compressed term may only appear at the top level"
    return f"unknown tag {tag}"


# ---------------------------------------------------------------- ENCODING


def encode(term: Any) -> bytes:
    """Encode ``term`` as ``term_to_binary`` would (leading 131 included)."""
    out = bytearray([VERSION])
    encode_into(out, term)
    return bytes(out)


_MAX_ENCODE_DEPTH = DEFAULT_LIMITS.max_depth


def encode_into(out: bytearray, term: Any, depth: int = 0) -> None:
    """Append the tagged encoding of ``term`` (no version byte) to ``out``."""
    if depth > _MAX_ENCODE_DEPTH:
        raise EncodeError(f"value nests deeper than {_MAX_ENCODE_DEPTH} levels "
                          "(is it self-referencing?)")
    t = type(term)
    if t is Atom:
        _encode_atom(out, term)
    elif t is bool:
        _encode_atom(out, "true" if term else "false")
    elif term is None:
        _encode_atom(out, "nil")
    elif t is int:
        _encode_int(out, term)
    elif t is float:
        if not math.isfinite(term):
            raise EncodeError(f"Erlang has no float for {term!r}; send a finite number or an atom")
        out.append(NEW_FLOAT)
        out += _F64.pack(term)
    elif t is str:
        raw = term.encode("utf-8")
        out.append(BINARY)
        out += _U32.pack(len(raw))
        out += raw
    elif t is bytes or t is bytearray or t is memoryview:
        raw = bytes(term)
        out.append(BINARY)
        out += _U32.pack(len(raw))
        out += raw
    elif t is tuple or (isinstance(term, tuple) and not isinstance(term, Atom)):
        n = len(term)
        if n < 256:
            out.append(SMALL_TUPLE)
            out.append(n)
        else:
            out.append(LARGE_TUPLE)
            out += _U32.pack(n)
        for item in term:
            encode_into(out, item, depth + 1)
    elif t is list:
        _encode_list(out, term, [], depth)
    elif t is dict:
        out.append(MAP)
        out += _U32.pack(len(term))
        for key, value in term.items():
            encode_into(out, key, depth + 1)
            encode_into(out, value, depth + 1)
    elif t is Pid:
        out.append(NEW_PID)
        _encode_atom(out, term.node)
        out += _U32_U32_U32.pack(term.id, term.serial, term.creation)
    elif t is Port:
        if term.id > 0xFFFFFFFF:
            out.append(V4_PORT)
            _encode_atom(out, term.node)
            out += _U64_U32.pack(term.id, term.creation)
        else:
            out.append(NEW_PORT)
            _encode_atom(out, term.node)
            out += _U32_U32.pack(term.id, term.creation)
    elif t is Reference:
        out.append(NEWER_REFERENCE)
        out += _U16.pack(len(term.ids))
        _encode_atom(out, term.node)
        out += _U32.pack(term.creation)
        out += struct.pack(f">{len(term.ids)}I", *term.ids)
    elif t is ImproperList:
        if not term.items:
            encode_into(out, term.tail, depth + 1)
        else:
            _encode_list(out, list(term.items), term.tail, depth)
    elif t is MapPairs:
        out.append(MAP)
        out += _U32.pack(len(term.pairs))
        for key, value in term.pairs:
            encode_into(out, key, depth + 1)
            encode_into(out, value, depth + 1)
    elif t is BitBinary:
        if not term.data or not 1 <= term.bits <= 8:
            raise EncodeError(f"a BitBinary needs data and 1..8 bits, got {term!r}")
        out.append(BIT_BINARY)
        out += _U32_U8.pack(len(term.data), term.bits)
        out += term.data
    elif t is ExportFun:
        out.append(EXPORT)
        _encode_atom(out, term.module)
        _encode_atom(out, term.function)
        out.append(SMALL_INTEGER)
        out.append(term.arity)
    elif t is Fun:
        _encode_fun(out, term, depth)
    elif isinstance(term, str):  # str subclasses other than Atom
        encode_into(out, str(term), depth)
    elif isinstance(term, dict):
        encode_into(out, dict(term), depth)
    elif isinstance(term, list):
        encode_into(out, list(term), depth)
    elif isinstance(term, int):  # IntEnum, numpy ints arrive via __index__
        _encode_int(out, int(term))
    else:
        raise EncodeError(f"cannot send a {t.__name__} to Erlang; use int, float, str, bytes, "
                          "tuple, list, dict, Atom, Pid or another microscope_jupyter.beam term")


_ATOM_CACHE: dict[str, bytes] = {}
_ATOM_CACHE_MAX = 8192


def _encode_atom(out: bytearray, name: str) -> None:
    # The same few atoms (node names, tags, module names) go out in every
    # message; caching their encodings is the cheapest win on the rpc path.
    cached = _ATOM_CACHE.get(name)
    if cached is None:
        cached = _atom_bytes(name)
        if len(_ATOM_CACHE) < _ATOM_CACHE_MAX:
            _ATOM_CACHE[name] = cached
    out += cached


def _atom_bytes(name: str) -> bytes:
    raw = name.encode("utf-8")
    if len(name) > 255:
        raise EncodeError(f"atoms are at most 255 characters; this one has {len(name)}")
    if len(raw) < 256:
        return bytes([SMALL_ATOM_UTF8, len(raw)]) + raw
    return bytes([ATOM_UTF8]) + _U16.pack(len(raw)) + raw


def _encode_int(out: bytearray, value: int) -> None:
    if 0 <= value <= 255:
        out.append(SMALL_INTEGER)
        out.append(value)
    elif -(1 << 31) <= value < (1 << 31):
        out.append(INTEGER)
        out += _I32.pack(value)
    else:
        magnitude = -value if value < 0 else value
        digits = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little")
        if len(digits) < 256:
            out.append(SMALL_BIG)
            out.append(len(digits))
        else:
            out.append(LARGE_BIG)
            out += _U32.pack(len(digits))
        out.append(1 if value < 0 else 0)
        out += digits


def _encode_list(out: bytearray, items: list, tail: Any, depth: int) -> None:
    n = len(items)
    if n == 0 and isinstance(tail, list) and not tail:
        out.append(NIL)
        return
    # term_to_binary packs short lists of bytes as STRING_EXT; do the same so
    # bytes match the node's own encoding.
    if (isinstance(tail, list) and not tail and n < 65536
            and all(type(x) is int and 0 <= x <= 255 for x in items)):
        out.append(STRING)
        out += _U16.pack(n)
        out += bytes(items)
        return
    out.append(LIST)
    out += _U32.pack(n)
    for item in items:
        encode_into(out, item, depth + 1)
    encode_into(out, tail, depth + 1)


def _encode_fun(out: bytearray, fun: Fun, depth: int) -> None:
    start = len(out)
    out.append(NEW_FUN)
    out += b"\0\0\0\0"  # size, patched below
    out.append(fun.arity)
    if len(fun.uniq) != 16:
        raise EncodeError("a Fun's uniq must be 16 bytes")
    out += fun.uniq
    out += _U32_U32.pack(fun.index, len(fun.free_vars))
    _encode_atom(out, fun.module)
    _encode_int(out, fun.old_index)
    _encode_int(out, fun.old_uniq)
    encode_into(out, fun.pid, depth + 1)
    for value in fun.free_vars:
        encode_into(out, value, depth + 1)
    _U32.pack_into(out, start + 1, len(out) - start - 1)
