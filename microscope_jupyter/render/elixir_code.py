"""Decoded terms as Elixir source that compiles: values to build and patterns to match.

    code = ElixirCode(bound={pid: "worker_b"})
    code.value(term)      # "%{count: 9, peer: worker_b, ref: make_ref()}"
    code.pattern(term)    # "%{count: 9, peer: ^worker_b, ref: _}"

``render.elixir`` is for people (cut to a length, ``#PID<...>``); this is for
the compiler, exact and never cut. What a literal cannot say is stood in for:

- a pid is the variable ``bound`` names for it (a stand-in process the test
  makes), else ``_`` in a pattern and a pid that is not alive in a value;
- a reference is ``make_ref()`` in a value and ``_`` in a pattern;
- a closure is ``_`` in a pattern and, in a value, a ``fn`` of its arity
  returning nil (the recording holds no code); ``&Mod.fun/2`` is exact;
- in a pattern, a timestamp (an integer of 10^12 or more, a ``DateTime``,
  ``NaiveDateTime`` or ``Time``) is ``_``: it will differ on a replay.

Maps are subset patterns in Elixir, so ``%{count: 9} = state`` checks only
``count``; ``pattern(term, only=keys)`` keeps the top-level keys given.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

from ..beam.terms import (Atom, BitBinary, ExportFun, Fun, ImproperList, MapPairs, Pid, Port,
                          Reference)

__all__ = ["ElixirCode", "elixir_atom", "elixir_module"]

_ALIAS = re.compile(r"^[A-Z][A-Za-z0-9_]*(\.[A-Z][A-Za-z0-9_]*)*$")
_PLAIN = re.compile(r"^[a-z_][A-Za-z0-9_@]*[?!]?$")
_OPERATOR_ATOMS = {"nil", "true", "false"}
_TIMESTAMP_STRUCTS = {"Elixir.DateTime", "Elixir.NaiveDateTime", "Elixir.Time"}
_STRUCT = Atom("__struct__")
_EXCEPTION = Atom("__exception__")
_RESERVED = {"do", "end", "fn", "when", "and", "or", "not", "in", "catch", "rescue", "after",
             "else"}


def elixir_module(name: str) -> str | None:
    """``Demo.WorkerB`` for the atom ``Elixir.Demo.WorkerB``; None for any other atom."""
    if name.startswith("Elixir.") and _ALIAS.match(name[len("Elixir."):]):
        return name[len("Elixir."):]
    return None


def elixir_atom(name: str) -> str:
    """An atom as Elixir source: ``:ok``, ``Demo.WorkerB``, ``:"odd name"``, ``nil``."""
    module = elixir_module(name)
    if module:
        return module
    if name in _OPERATOR_ATOMS:
        return name
    if _PLAIN.match(name) and name not in _RESERVED:
        return ":" + name
    return ':"' + _escape(name) + '"'


def _key(name: str) -> str | None:
    """The ``key:`` shorthand of an atom key, or None when it needs ``=>``."""
    if _PLAIN.match(name) and name not in _OPERATOR_ATOMS:
        return name + ":"
    return None


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "#":
            out.append("\\#")            # never the start of an interpolation
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\u{{{ord(ch):X}}}")
        else:
            out.append(ch)
    return "".join(out)


def _float(x: float) -> str:
    if not math.isfinite(x):
        raise ValueError(f"{x} has no Erlang spelling")
    text = repr(x)
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + (e + exponent if e else "")


class ElixirCode:
    """Writes terms as Elixir; ``bound`` maps pids to the variables that hold them."""

    def __init__(self, bound: dict[Pid, str] | None = None):
        self.bound = dict(bound or {})

    # -- values ----------------------------------------------------------------

    def value(self, term: Any) -> str:
        return self._write(term, pattern=False)

    def pattern(self, term: Any, only: Iterable[Any] | None = None) -> str:
        if only is not None and isinstance(term, dict):
            keep = list(only)
            term = {k: v for k, v in term.items() if k in keep or k == _STRUCT}
        return self._write(term, pattern=True)

    def _write(self, t: Any, pattern: bool) -> str:
        w = self._write
        if t is True:
            return "true"
        if t is False:
            return "false"
        if t is None:
            return "nil"
        if isinstance(t, Atom):
            return elixir_atom(str(t))
        if isinstance(t, str):
            return '"' + _escape(t) + '"'
        if isinstance(t, int):
            if pattern and abs(t) >= 10**12:
                return "_"      # a timestamp, or as good as one: it differs on a replay
            return str(t)
        if isinstance(t, float):
            return _float(t)
        if isinstance(t, (bytes, bytearray)):
            return "<<" + ", ".join(str(b) for b in t) + ">>"
        if isinstance(t, BitBinary):
            whole = ", ".join(str(b) for b in t.data[:-1])
            last = t.data[-1] >> (8 - t.bits) if t.data else 0
            return "<<" + (whole + ", " if whole else "") + f"{last}::size({t.bits})>>"
        if isinstance(t, tuple):
            return "{" + ", ".join(w(x, pattern) for x in t) + "}"
        if isinstance(t, list):
            return self._list(t, pattern)
        if isinstance(t, ImproperList):
            return ("[" + ", ".join(w(x, pattern) for x in t.items) + " | "
                    + w(t.tail, pattern) + "]")
        if isinstance(t, (dict, MapPairs)):
            return self._map(list(t.items()), pattern)
        if isinstance(t, Pid):
            if t in self.bound:
                return ("^" if pattern else "") + self.bound[t]
            return "_" if pattern else f":erlang.list_to_pid(~c\"<0.{t.id}.{t.serial}>\")"
        if isinstance(t, Reference):
            return "_" if pattern else "make_ref()"
        if isinstance(t, Port):
            return "_" if pattern else f":erlang.list_to_port(~c\"#Port<0.{t.id}>\")"
        if isinstance(t, ExportFun):
            if pattern:
                return "_"      # a function is no pattern
            module = elixir_module(str(t.module)) or elixir_atom(str(t.module))
            return f"&{module}.{_function_name(str(t.function))}/{t.arity}"
        if isinstance(t, Fun):
            if pattern:
                return "_"
            args = ", ".join(f"_arg{i}" for i in range(t.arity))
            return f"fn {args}{' ' if args else ''}-> nil end"
        raise ValueError(f"no Elixir spelling for {type(t).__name__}")

    def _key_code(self, key: Any, pattern: bool) -> str:
        if pattern and isinstance(key, Pid):
            return "^" + self.bound[key]
        return self._write(key, False)

    def _list(self, items: list, pattern: bool) -> str:
        keyword = items and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], Atom)
                                and _key(str(x[0])) for x in items)
        if keyword:
            return "[" + ", ".join(f"{_key(str(k))} {self._write(v, pattern)}"
                                   for k, v in items) + "]"
        return "[" + ", ".join(self._write(x, pattern) for x in items) + "]"

    def _map(self, pairs: list, pattern: bool) -> str:
        struct = next((v for k, v in pairs if k == _STRUCT and isinstance(v, Atom)), None)
        if struct is not None and pattern and str(struct) in _TIMESTAMP_STRUCTS:
            return "_"
        module = elixir_module(str(struct)) if struct is not None else None
        rest = [(k, v) for k, v in pairs if not (module and k == _STRUCT)
                and not (pattern and module and k == _EXCEPTION)]   # always true in one
        if pattern:
            # A key in a pattern must be a literal (or pinned): entries keyed
            # by a pid, a ref or a closure are left out of the subset match.
            rest = [(k, v) for k, v in rest if _literal_key(k, self.bound)]
        shorthand = all(isinstance(k, Atom) and _key(str(k)) for k, _ in rest)
        if shorthand:
            body = ", ".join(f"{_key(str(k))} {self._write(v, pattern)}" for k, v in rest)
        else:
            body = ", ".join(f"{self._key_code(k, pattern)} => {self._write(v, pattern)}"
                             for k, v in rest)
        return ("%" + module if module else "%") + "{" + body + "}"


def _literal_key(term: Any, bound: dict, top: bool = True) -> bool:
    """Whether ``term`` can be a map key in a pattern: a literal, or a bound pid
    pinned at the top (nested, a variable would need its own pin)."""
    if isinstance(term, Pid):
        return top and term in bound
    if isinstance(term, (Reference, Port, Fun, ExportFun)):
        return False
    if isinstance(term, (tuple, list)):
        return all(_literal_key(x, bound, False) for x in term)
    if isinstance(term, ImproperList):
        return (all(_literal_key(x, bound, False) for x in term.items)
                and _literal_key(term.tail, bound, False))
    if isinstance(term, (dict, MapPairs)):
        return all(_literal_key(k, bound, False) and _literal_key(v, bound, False)
                   for k, v in term.items())
    return True


def _function_name(name: str) -> str:
    return name if _PLAIN.match(name) else '"' + _escape(name) + '"'
