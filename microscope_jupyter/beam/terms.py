"""Python types for the Erlang terms that have no natural Python twin.

The mapping, chosen so Elixir data reads naturally in pandas:

    Erlang                      Python
    ------                      ------
    integer, float              int, float
    atom true / false / nil     True / False / None
    any other atom              Atom (a str that never equals a plain str)
    binary (valid UTF-8)        str
    binary (not UTF-8)          bytes
    bitstring                   BitBinary
    tuple                       tuple
    proper list                 list
    improper list               ImproperList
    map                         dict (MapPairs when keys collide in Python,
                                for example 1 and 1.0, or are unhashable)
    pid / port / reference      Pid / Port / Reference
    fun / external fun          Fun / ExportFun

Every type here round-trips through the encoder to an equal Erlang term.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = [
    "Atom",
    "Pid",
    "Port",
    "Reference",
    "Fun",
    "ExportFun",
    "ImproperList",
    "BitBinary",
    "MapPairs",
    "format_erlang",
    "pids_in",
]


class Atom(str):
    """An Erlang atom.

    A str subclass so it prints and sorts like text, but it compares equal
    only to other atoms: in Elixir ``:ok`` and ``"ok"`` are different keys,
    and a dict decoded from a map must keep them apart.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Atom) and str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    # The text's own hash, in C: an atom and the equal text share a hash but
    # never compare equal, so a dict keeps them apart all the same. Atoms are
    # hashed endlessly (map keys, interned ids), so this is worth it.
    __hash__ = str.__hash__

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


@dataclass(frozen=True, slots=True)
class Pid:
    node: Atom
    id: int
    serial: int
    creation: int

    def __str__(self) -> str:
        # The shell's local form; the node is kept alongside in every table.
        return f"<0.{self.id}.{self.serial}>"


@dataclass(frozen=True, slots=True)
class Port:
    node: Atom
    id: int
    creation: int

    def __str__(self) -> str:
        return f"#Port<0.{self.id}>"


@dataclass(frozen=True, slots=True)
class Reference:
    node: Atom
    creation: int
    ids: tuple[int, ...]

    def __str__(self) -> str:
        return "#Ref<0." + ".".join(str(i) for i in reversed(self.ids)) + ">"


@dataclass(frozen=True, slots=True)
class Fun:
    """A closure (NEW_FUN_EXT). Opaque: kept whole so it can be sent back."""

    module: Atom
    arity: int
    uniq: bytes
    index: int
    old_index: int
    old_uniq: int
    pid: Pid
    free_vars: tuple[Any, ...] = ()

    def __str__(self) -> str:
        return f"#Fun<{self.module}.{self.old_index}.{self.old_uniq}>"


@dataclass(frozen=True, slots=True)
class ExportFun:
    """``fun Module:Function/Arity`` (EXPORT_EXT)."""

    module: Atom
    function: Atom
    arity: int

    def __str__(self) -> str:
        return f"fun {self.module}:{self.function}/{self.arity}"


@dataclass(frozen=True, slots=True)
class ImproperList:
    """``[a, b | tail]`` where tail is not ``[]``."""

    items: tuple[Any, ...]
    tail: Any

    def __init__(self, items: Iterable[Any], tail: Any):
        object.__setattr__(self, "items", tuple(items))
        object.__setattr__(self, "tail", tail)


@dataclass(frozen=True, slots=True)
class BitBinary:
    """A bitstring whose length is not a whole number of bytes.

    ``bits`` is how many high bits of the last byte belong to the value
    (1..8); the rest are zero, as the external format requires.
    """

    data: bytes
    bits: int

    @property
    def bit_size(self) -> int:
        return max(0, (len(self.data) - 1) * 8 + self.bits) if self.data else 0


@dataclass(frozen=True, slots=True)
class MapPairs:
    """A map that a Python dict cannot hold faithfully.

    Python treats ``1 == 1.0 == True`` and cannot hash lists or dicts; an
    Erlang map can have such keys side by side. Rather than lose an entry,
    the decoder keeps the pairs in order.
    """

    pairs: tuple[tuple[Any, Any], ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.pairs)

    def items(self):
        return iter(self.pairs)


def format_erlang(term: Any, limit: int = 2000) -> str:
    """Render a decoded term in Erlang syntax, cut at ``limit`` characters.

    Used for error messages, where the remote reason must be readable
    without the render layer. Rich Elixir rendering lives in ``render/``.
    """
    text = _fmt(term, 0)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(term: Any, depth: int) -> str:
    if depth > 50:
        return "..."
    d = depth + 1
    if term is True:
        return "true"
    if term is False:
        return "false"
    if term is None:
        return "nil"
    if isinstance(term, Atom):
        return _fmt_atom(term)
    if isinstance(term, str):
        return '<<"' + term.replace("\\", "\\\\").replace('"', '\\"') + '"/utf8>>' 
    if isinstance(term, (bytes, bytearray)):
        return "<<" + ",".join(str(b) for b in term) + ">>"
    if isinstance(term, tuple):
        return "{" + ",".join(_fmt(x, d) for x in term) + "}"
    if isinstance(term, list):
        return "[" + ",".join(_fmt(x, d) for x in term) + "]"
    if isinstance(term, ImproperList):
        return "[" + ",".join(_fmt(x, d) for x in term.items) + "|" + _fmt(term.tail, d) + "]"
    if isinstance(term, dict):
        return "#{" + ",".join(f"{_fmt(k, d)} => {_fmt(v, d)}" for k, v in term.items()) + "}"
    if isinstance(term, MapPairs):
        return "#{" + ",".join(f"{_fmt(k, d)} => {_fmt(v, d)}" for k, v in term.pairs) + "}"
    if isinstance(term, BitBinary):
        return f"<<...{term.bit_size} bits>>"
    return str(term)


def _fmt_atom(atom: str) -> str:
    if atom and atom[0].islower() and all(c.isalnum() or c in "_@" for c in atom):
        return str(atom)
    return "'" + atom.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pids_in(term: Any, found: dict | None = None) -> dict:
    """Every pid ``term`` holds, in the order first met, as the keys of a dict
    (``found``, extended, if given): through tuples, lists, improper lists and maps."""
    found = {} if found is None else found
    if isinstance(term, Pid):
        found[term] = None
    elif isinstance(term, (tuple, list)):
        for x in term:
            pids_in(x, found)
    elif isinstance(term, ImproperList):
        for x in term.items:
            pids_in(x, found)
        pids_in(term.tail, found)
    elif isinstance(term, (dict, MapPairs)):
        for k, v in term.items():
            pids_in(k, found)
            pids_in(v, found)
    return found
