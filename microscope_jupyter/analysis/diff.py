"""Structural diff of decoded terms, with paths in Elixir access syntax.

    >>> before = {Atom("count"): 9, Atom("users"): [Atom("ann")]}
    >>> after = {Atom("count"): 10, Atom("users"): [Atom("ann"), Atom("bob")]}
    >>> print(render_diff(diff(before, after)))
    .count: 9 -> 10
    .users |> Enum.at(1): added :bob

Paths: ``.key`` for atom keys of maps and structs, ``["key"]`` / ``[1]`` for
other map keys, ``[:key]`` for keyword lists, ``|> elem(2)`` for tuples and
``|> Enum.at(2)`` for lists. Equal means equal as Erlang sees it (``1`` and
``1.0`` differ; ``:ok`` and ``"ok"`` differ).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..beam.terms import Atom, ImproperList, MapPairs
from ..render.elixir import render
from ..store.otp import ABSENT, map_sizes, state_recorded

__all__ = ["Change", "diff", "render_diff", "diff_frame", "same_term", "transition_changes"]

_STRUCT = Atom("__struct__")


@dataclass(frozen=True)
class Change:
    path: str
    change: str        # "changed" | "added" | "removed" | "set" (before not recorded)
    #                    | "resized" (a big map not compared: before/after are its sizes)
    before: Any = None
    after: Any = None

    def text(self, syntax: str = "elixir", limit: int = 80) -> str:
        where = self.path or "(whole term)"
        if self.change == "added":
            return f"{where}: added {render(self.after, syntax, limit)}"
        if self.change == "removed":
            return f"{where}: removed {render(self.before, syntax, limit)}"
        if self.change == "set":
            return f"{where}: now {render(self.after, syntax, limit)}"
        if self.change == "resized":
            grew = (f"{self.before:,} -> {self.after:,} keys" if self.before != self.after
                    else f"{self.after:,} keys")
            return f"{where}: changed, a map of {grew} (too big to compare on every callback)"
        return f"{where}: {render(self.before, syntax, limit)} -> {render(self.after, syntax, limit)}"


def same_term(a: Any, b: Any) -> bool:
    """Erlang's =:= on decoded terms (type-aware, unlike Python's ==)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_term(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(k in b and same_term(v, b[k]) for k, v in a.items())
    if isinstance(a, ImproperList):
        return same_term(a.items, b.items) and same_term(a.tail, b.tail)
    return a == b


def diff(before: Any, after: Any, path: str = "", max_changes: int = 1000) -> list[Change]:
    out: list[Change] = []
    _diff(before, after, path, out, max_changes)
    return out


def _is_keyword(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], Atom) for x in value)
            and len({x[0] for x in value}) == len(value))


def _key_path(key: Any) -> str:
    if isinstance(key, Atom) and key.replace("_", "a").isalnum() and not key[:1].isdigit():
        return f".{key}"
    return f"[{render(key, 'elixir', 60)}]"


def _diff(a: Any, b: Any, path: str, out: list[Change], budget: int) -> None:
    if len(out) >= budget or same_term(a, b):
        return
    if isinstance(a, dict) and isinstance(b, dict):
        if _STRUCT in a and not same_term(a.get(_STRUCT), b.get(_STRUCT)):
            out.append(Change(path, "changed", a, b))
            return
        for key in a:
            if key == _STRUCT:
                continue
            if key in b:
                _diff(a[key], b[key], path + _key_path(key), out, budget)
            else:
                out.append(Change(path + _key_path(key), "removed", a[key], None))
        for key in b:
            if key not in a:
                out.append(Change(path + _key_path(key), "added", None, b[key]))
        return
    if _is_keyword(a) and _is_keyword(b):
        da, db = dict(a), dict(b)
        for key, value in a:
            where = f"{path}[{render(key, 'elixir', 60)}]"
            if key in db:
                _diff(value, db[key], where, out, budget)
            else:
                out.append(Change(where, "removed", value, None))
        for key, value in b:
            if key not in da:
                out.append(Change(f"{path}[{render(key, 'elixir', 60)}]", "added", None, value))
        return
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) and a:
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path} |> elem({i})", out, budget)
        return
    if isinstance(a, list) and isinstance(b, list):
        _diff_lists(a, b, path, out, budget)
        return
    if isinstance(a, MapPairs) and isinstance(b, MapPairs):
        out.append(Change(path, "changed", a, b))
        return
    out.append(Change(path, "changed", a, b))


def _diff_lists(a: list, b: list, path: str, out: list[Change], budget: int) -> None:
    if len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path} |> Enum.at({i})", out, budget)
        return
    # Different lengths: align by content so one insertion is one change.
    keys_a = [render(x, "erlang", 200) for x in a]
    keys_b = [render(x, "erlang", 200) for x in b]
    matcher = difflib.SequenceMatcher(a=keys_a, b=keys_b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            for k in range(i2 - i1):
                _diff(a[i1 + k], b[j1 + k], f"{path} |> Enum.at({j1 + k})", out, budget)
            continue
        for k in range(i1, i2):
            out.append(Change(f"{path} |> Enum.at({k})", "removed", a[k], None))
        for k in range(j1, j2):
            out.append(Change(f"{path} |> Enum.at({k})", "added", None, b[k]))


def transition_changes(transition: dict) -> list[Change] | None:
    """What one state transition changed: a diff of its states, or, where the
    agent did not copy them (too large), the fields its hook saw change;
    None when neither was recorded."""
    before, after = transition.get("before"), transition.get("after")
    if state_recorded(before) and state_recorded(after):
        return diff(before, after)
    if transition.get("changes") is None:
        return None
    out = []
    for steps, value in transition.get("changes") or []:
        path = "".join(_key_path(v) if t == "key" else f" |> elem({v - 1})" for t, v in steps)
        if isinstance(value, Atom) and value == ABSENT:
            out.append(Change(path, "removed", None, None))
        elif map_sizes(value) is not None:
            out.append(Change(path, "resized", *map_sizes(value)))
        else:
            out.append(Change(path, "set", None, value))
    return out


def render_diff(changes: list[Change] | None, syntax: str = "elixir", sep: str = "\n") -> str:
    """One line a change (``sep="; "`` for a table cell, where a newline shows as ``\\n``)."""
    if changes is None:
        return "(not recorded)"
    if not changes:
        return "(no change)"
    return sep.join(c.text(syntax) for c in changes)


def diff_frame(changes: list[Change], syntax: str = "elixir") -> pd.DataFrame:
    frame = pd.DataFrame({
        "path": [c.path for c in changes],
        "change": [c.change for c in changes],
        "before": pd.Series([c.before for c in changes], dtype=object),
        "after": pd.Series([c.after for c in changes], dtype=object),
        "before_text": [render(c.before, syntax) if c.change != "added" else None for c in changes],
        "after_text": [render(c.after, syntax) if c.change != "removed" else None for c in changes],
    })
    return frame
