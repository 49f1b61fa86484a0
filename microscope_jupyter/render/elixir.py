"""Decoded terms printed as Elixir's ``inspect`` would (default), or as Erlang.

    >>> to_elixir({Atom("count"): 1})
    '%{count: 1}'
    >>> to_elixir((Atom("update"), 3))
    '{:update, 3}'
    >>> to_elixir({Atom("__struct__"): Atom("Elixir.MyApp.User"), Atom("name"): "ada"})
    '%MyApp.User{name: "ada"}'
    >>> to_elixir([(Atom("a"), 1)])
    '[a: 1]'
    >>> to_elixir([104, 105])
    '~c"hi"'

Output is cut at ``limit`` characters with ``...`` so a table cell never
carries a megabyte of state.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from ..beam.terms import (Atom, BitBinary, ExportFun, Fun, ImproperList, MapPairs, Pid, Port,
                          Reference, format_erlang)
from .names import format_module

__all__ = ["to_elixir", "to_erlang", "render"]

_TRUNCATED = Atom("$microscope_truncated")
# Placeholders the agent sends for what it did not copy (store.event_store).
_PLACEHOLDERS = {Atom("$microscope_large"): "#NotCopied<large state>",
                 Atom("$microscope_unknown"): "#NotRecorded<before the hook>"}
_STRUCT_KEY = Atom("__struct__")


class _Budget(Exception):
    pass


def render(term: Any, syntax: str = "elixir", limit: int = 200) -> str:
    return to_erlang(term, limit) if syntax == "erlang" else to_elixir(term, limit)


def to_erlang(term: Any, limit: int = 200) -> str:
    return format_erlang(term, limit)


def to_elixir(term: Any, limit: int = 200) -> str:
    parts: list[str] = []
    budget = [limit + 1]
    try:
        _ex(term, parts, budget, 0)
    except _Budget:
        pass
    text = "".join(parts)
    if len(text) > limit:
        return text[: max(0, limit - 3)] + "..."
    return text


def _put(parts: list[str], budget: list[int], text: str) -> None:
    parts.append(text)
    budget[0] -= len(text)
    if budget[0] <= 0:
        raise _Budget


# Atom names repeat endlessly across a recording (keys, tags, modules):
# spell each once.
@functools.lru_cache(maxsize=1 << 16)
def _atom(name: str) -> str:
    if name.startswith("Elixir."):
        return name[len("Elixir."):]
    if _plain_atom(name):
        return ":" + name
    return ':"' + _escape(name) + '"'


def _plain_atom(name: str) -> bool:
    if not name:
        return False
    if not (name[0].isalpha() and name[0].islower() or name[0] == "_"):
        return False
    body = name.rstrip("?!")
    return all(c.isalnum() or c in "_@" for c in body)


@functools.lru_cache(maxsize=1 << 16)
def _key(name: str) -> str:
    # Keyword/map shorthand: `count: 1`, `"odd key": 1`
    if _plain_atom(name) or (name[:1].isupper() and name.replace("_", "").isalnum()):
        return name + ":"
    return '"' + _escape(name) + '":'


def _escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            .replace("\t", "\\t").replace("\r", "\\r"))


def _is_keyword(items: list) -> bool:
    return bool(items) and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], Atom)
                               for x in items)


def _is_charlist(items: list) -> bool:
    return bool(items) and all(type(c) is int and (32 <= c < 127 or c in (9, 10, 13))
                               for c in items)


def _ex(term: Any, parts: list[str], budget: list[int], depth: int) -> None:
    put = _put
    if depth > 60:
        put(parts, budget, "...")
        return
    d = depth + 1
    if term is True:
        put(parts, budget, "true")
    elif term is False:
        put(parts, budget, "false")
    elif term is None:
        put(parts, budget, "nil")
    elif isinstance(term, Atom):
        put(parts, budget, _PLACEHOLDERS.get(term) or _atom(str(term)))
    elif isinstance(term, str):
        put(parts, budget, '"' + _escape(term) + '"')
    elif isinstance(term, bool):
        put(parts, budget, str(term).lower())
    elif isinstance(term, int):
        put(parts, budget, str(term) if abs(term) < 10**40 else f"{term:.3e}")
    elif isinstance(term, float):
        put(parts, budget, repr(term) if math.isfinite(term) else str(term))
    elif isinstance(term, (bytes, bytearray)):
        put(parts, budget, "<<" + ", ".join(str(b) for b in term) + ">>")
    elif isinstance(term, tuple):
        if len(term) == 2 and term[0] == _TRUNCATED:
            put(parts, budget, f"#Truncated<{term[1]} bytes>")
            return
        _items(term, "{", "}", parts, budget, d)
    elif isinstance(term, list):
        if _is_charlist(term):
            put(parts, budget, '~c"' + _escape("".join(map(chr, term))) + '"')
        elif _is_keyword(term):
            _items(term, "[", "]", parts, budget, d, keyword=True)
        else:
            _items(term, "[", "]", parts, budget, d)
    elif isinstance(term, ImproperList):
        _items(term.items, "[", "", parts, budget, d)
        put(parts, budget, " | ")
        _ex(term.tail, parts, budget, d)
        put(parts, budget, "]")
    elif isinstance(term, (dict, MapPairs)):
        _map(list(term.items()), parts, budget, d)
    elif isinstance(term, Pid):
        put(parts, budget, f"#PID<0.{term.id}.{term.serial}>")
    elif isinstance(term, Reference):
        put(parts, budget, "#Reference<0." + ".".join(str(i) for i in reversed(term.ids)) + ">")
    elif isinstance(term, Port):
        put(parts, budget, f"#Port<0.{term.id}>")
    elif isinstance(term, ExportFun):
        put(parts, budget, f"&{format_module(str(term.module))}.{term.function}/{term.arity}")
    elif isinstance(term, Fun):
        put(parts, budget, f"#Function<{term.old_index}.{term.old_uniq}/{term.arity} in "
                           f"{format_module(str(term.module))}>")
    elif isinstance(term, BitBinary):
        put(parts, budget, f"<<...{term.bit_size} bits>>")
    else:
        put(parts, budget, repr(term))


def _items(items: Any, opening: str, closing: str, parts: list[str], budget: list[int],
           depth: int, keyword: bool = False) -> None:
    """Comma-separated elements between brackets; ``keyword`` writes ``key: value``."""
    _put(parts, budget, opening)
    for i, item in enumerate(items):
        if i:
            _put(parts, budget, ", ")
        if keyword:
            _put(parts, budget, _key(str(item[0])) + " ")
            item = item[1]
        _ex(item, parts, budget, depth)
    if closing:
        _put(parts, budget, closing)


def _map(items: list, parts: list[str], budget: list[int], depth: int) -> None:
    struct = None
    rest = []
    for k, v in items:
        if k == _STRUCT_KEY and isinstance(v, Atom):
            struct = v
        else:
            rest.append((k, v))
    if struct is not None:
        _put(parts, budget, "%" + _atom(str(struct)).lstrip(":") + "{")
    else:
        _put(parts, budget, "%{")
    atom_keys = all(isinstance(k, Atom) for k, _ in rest)
    for i, (k, v) in enumerate(rest):
        if i:
            _put(parts, budget, ", ")
        if atom_keys:
            _put(parts, budget, _key(str(k)) + " ")
        else:
            _ex(k, parts, budget, depth)
            _put(parts, budget, " => ")
        _ex(v, parts, budget, depth)
    _put(parts, budget, "}")
