"""Elixir match patterns over decoded terms: ``{:update, _}``, ``%{count: n}``, ``[h | _]``.

    >>> matches = compile_pattern("{:update, n}")
    >>> matches((Atom("update"), 3))
    True
    >>> compile_pattern("%Demo.User{name: name}")({Atom("__struct__"): Atom("Elixir.Demo.User"), Atom("name"): "ada"})
    True

Supported: ``_`` and ``_name``, variables (a repeated variable must match
equal values), atoms (``:ok``, ``:"odd atom"``, ``true``, ``false``,
``nil``, aliases like ``MyApp.Worker``), integers, floats, strings, tuples,
lists with ``|`` tails, keyword lists (``[a: 1]``), maps (a pattern matches
any map with at least those keys) and structs. A Python callable is also
accepted wherever a pattern is: it is called with the term.

A message matches by what its sender's code wrote (``match_message``):
``{:add, _}`` finds ``send(pid, {:add, 1})``, ``GenServer.cast(pid, {:add, 1})``
(which arrives as ``{:"$gen_cast", {:add, 1}}``) and ``GenServer.call(pid,
{:add, 1})``.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ..beam.terms import Atom, ImproperList
from ..errors import PatternError
from ..store.otp import message_kind

__all__ = ["compile_pattern", "safe_match", "match_message", "PatternError"]


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<map_open>%\{)
  | (?P<struct_open>%(?P<struct_name>[A-Z][\w.]*)\{)
  | (?P<quoted_atom>:"(?:[^"\\]|\\.)*")
  | (?P<atom>:[a-zA-Z_][\w@]*[?!]?)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)
  | (?P<key>[a-z_][\w]*[?!]?:(?=\s))
  | (?P<arrow>=>)
  | (?P<alias>[A-Z][\w]*(?:\.[A-Z][\w]*)*)
  | (?P<name>[a-z_][\w]*[?!]?)
  | (?P<punct>[{}\[\],|])
""", re.VERBOSE)

Matcher = Callable[[Any, dict], bool]


def compile_pattern(pattern: str | Callable[[Any], bool]) -> Callable[[Any], bool]:
    """A predicate from an Elixir pattern string (or a callable, returned as is)."""
    if callable(pattern):
        return pattern
    if not isinstance(pattern, str):
        raise PatternError(f"expected an Elixir pattern string or a callable, got {pattern!r}")
    tokens = _tokenize(pattern)
    parser = _Parser(tokens, pattern)
    matcher = parser.term()
    if parser.pos != len(tokens):
        raise PatternError(f"unexpected {tokens[parser.pos][1]!r} in pattern {pattern!r}")

    def predicate(term: Any) -> bool:
        return matcher(term, {})

    predicate.__doc__ = f"matches {pattern}"
    return predicate


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise PatternError(f"cannot read pattern {text!r} at {text[pos:pos + 10]!r}; write "
                               "Elixir patterns such as {:update, _} or %{count: n}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "struct_name":
            kind = "struct_open"
        if kind == "ws":
            continue
        if kind == "struct_open":
            tokens.append((kind, m.group("struct_name")))
        else:
            tokens.append((kind, m.group(kind)))
    return tokens


def _unescape(quoted: str) -> str:
    return bytes(quoted, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")


def _literal(value: Any) -> Matcher:
    def match(term: Any, _env: dict) -> bool:
        return type(term) is type(value) and term == value
    return match


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], source: str):
        self.tokens = tokens
        self.pos = 0
        self.source = source

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            want = f"{value!r}" if value else "more"
            raise PatternError(f"expected {want} in pattern {self.source!r}")
        self.pos += 1
        return token

    def term(self) -> Matcher:
        token = self.peek()
        if token is None:
            raise PatternError(f"pattern {self.source!r} ends too early")
        kind, text = token
        if kind == "punct" and text == "{":
            return self.tuple_()
        if kind == "punct" and text == "[":
            return self.list_()
        if kind == "map_open":
            self.take()
            return self.map_(None)
        if kind == "struct_open":
            self.take()
            return self.map_(Atom("Elixir." + text))
        self.take()
        if kind == "atom":
            return _literal(Atom(text[1:]))
        if kind == "quoted_atom":
            return _literal(Atom(_unescape(text[2:-1])))
        if kind == "string":
            return _literal(_unescape(text[1:-1]))
        if kind == "number":
            return _literal(float(text) if any(c in text for c in ".e") else int(text))
        if kind == "alias":
            return _literal(Atom("Elixir." + text))
        if kind == "name":
            if text in ("true", "false", "nil"):
                value = {"true": True, "false": False, "nil": None}[text]
                return lambda term, _env: term is value
            if text.startswith("_"):
                return lambda term, _env: True
            return _variable(text)
        raise PatternError(f"unexpected {text!r} in pattern {self.source!r}")

    def tuple_(self) -> Matcher:
        self.take("{")
        items = self.sequence("}")
        self.take("}")

        def match(term: Any, env: dict) -> bool:
            return (isinstance(term, tuple) and len(term) == len(items)
                    and all(m(t, env) for m, t in zip(items, term)))
        return match

    def sequence(self, closer: str) -> list[Matcher]:
        items: list[Matcher] = []
        while self.peek() and self.peek()[1] not in (closer, "|"):
            items.append(self.element())
            if self.peek() and self.peek()[1] == ",":
                self.take(",")
        return items

    def element(self) -> Matcher:
        token = self.peek()
        if token and token[0] == "key":  # keyword shorthand inside a list
            self.take()
            key = Atom(token[1][:-1])
            value = self.term()
            return lambda term, env: (isinstance(term, tuple) and len(term) == 2
                                      and term[0] == key and value(term[1], env))
        return self.term()

    def list_(self) -> Matcher:
        self.take("[")
        items = self.sequence("]")
        tail: Matcher | None = None
        if self.peek() and self.peek()[1] == "|":
            self.take("|")
            tail = self.term()
        self.take("]")

        def match(term: Any, env: dict) -> bool:
            if isinstance(term, ImproperList):
                values, rest = list(term.items), term.tail
            elif isinstance(term, list):
                values, rest = term, []
            else:
                return False
            if tail is None:
                return (isinstance(term, list) and len(values) == len(items)
                        and all(m(v, env) for m, v in zip(items, values)))
            if len(values) < len(items) or not all(m(v, env) for m, v in zip(items, values)):
                return False
            remainder = values[len(items):]
            if isinstance(rest, list) and not rest:
                rest_term: Any = remainder
            else:
                rest_term = ImproperList(remainder, rest) if remainder else rest
            return tail(rest_term, env)
        return match

    def map_(self, struct: Atom | None) -> Matcher:
        pairs: list[tuple[Matcher | Any, Matcher, bool]] = []
        while self.peek() and self.peek()[1] != "}":
            token = self.peek()
            if token[0] == "key":
                self.take()
                pairs.append((Atom(token[1][:-1]), self.term(), True))
            else:
                key = self.term()
                self.take("=>")
                pairs.append((key, self.term(), False))
            if self.peek() and self.peek()[1] == ",":
                self.take(",")
        self.take("}")
        struct_key = Atom("__struct__")

        def match(term: Any, env: dict) -> bool:
            if not isinstance(term, dict):
                return False
            if struct is not None and term.get(struct_key) != struct:
                return False
            for key, value, literal_key in pairs:
                if literal_key:
                    if key not in term or not value(term[key], env):
                        return False
                else:
                    found = [k for k in term if key(k, dict(env))]
                    if not found or not value(term[found[0]], env):
                        return False
            return True
        return match


def _variable(name: str) -> Matcher:
    from .diff import same_term

    def match(term: Any, env: dict) -> bool:
        if name in env:
            return same_term(env[name], term)
        env[name] = term
        return True
    return match


def safe_match(predicate: Callable[[Any], bool], term: Any) -> bool:
    """``predicate(term)``, False where it raises: one odd term must not break a filter."""
    try:
        return bool(predicate(term))
    except Exception:  # noqa: BLE001 - a user's predicate may fail on any term
        return False


def match_message(predicate: Callable[[Any], bool], message: Any) -> str | None:
    """How ``message`` matches: ``"call"`` or ``"cast"`` when the request of a
    GenServer.call or the body of a cast does (or the whole ``$gen_call`` /
    ``$gen_cast`` tuple, spelled out), ``"send"`` when any other message does;
    None when it does not."""
    kind = message_kind(message)
    if kind == "call" and len(message) == 3:
        written = message[2]
    elif kind == "cast" and len(message) == 2:
        written = message[1]
    else:
        kind, written = "send", message
    if safe_match(predicate, written):
        return kind
    if written is not message and safe_match(predicate, message):
        return kind
    return None
