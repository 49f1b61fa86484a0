"""Module, function and registered names in Elixir or Erlang syntax.

    >>> format_mfa("Elixir.MyApp.Worker", "init", 1)
    'MyApp.Worker.init/1'
    >>> format_mfa("gen_server", "loop", 7)
    ':gen_server.loop/7'
    >>> format_mfa("gen_server", "loop", 7, syntax="erlang")
    'gen_server:loop/7'
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["format_mfa", "format_mfa_term", "format_name", "format_module", "erlang_module_name",
           "known_as"]

_ELIXIR = "Elixir."


def erlang_module_name(text: str) -> str:
    """``MyApp.Worker`` -> ``Elixir.MyApp.Worker``; ``:gen_server``/``gen_server`` -> ``gen_server``."""
    if text.startswith(":"):
        return text[1:]
    if text.startswith("Elixir."):
        return text
    if text[:1].isupper():
        return "Elixir." + text
    return text


def format_module(module: str, syntax: str = "elixir") -> str:
    if syntax == "erlang":
        return _quote_erlang(module)
    if module.startswith(_ELIXIR):
        return module[len(_ELIXIR):]
    return ":" + module if _plain(module) else ':"' + module + '"'


def format_name(name: Any, syntax: str = "elixir") -> str | None:
    """A registered name for tables: ``MyApp.Registry`` or ``code_server``; None if unnamed."""
    if name is None or name == [] or name == "":
        return None
    text = str(name)
    if syntax == "elixir" and text.startswith(_ELIXIR):
        return text[len(_ELIXIR):]
    return text


def format_mfa(module: Any, function: Any, arity: Any, syntax: str = "elixir") -> str:
    if type(arity) is int:  # the usual case, and it repeats: spell each MFA once
        return _format_mfa(str(module), str(function), arity, syntax)
    return _format_mfa.__wrapped__(str(module), str(function), arity, syntax)


@functools.lru_cache(maxsize=1 << 14)
def _format_mfa(module: str, function: str, arity: Any, syntax: str) -> str:
    fun = function
    if syntax == "erlang":
        return f"{_quote_erlang(str(module))}:{_quote_erlang(fun)}/{arity}"
    if not _plain(fun):
        fun = '"' + fun + '"'
    return f"{format_module(str(module))}.{fun}/{arity}"


def format_mfa_term(term: Any, syntax: str = "elixir") -> str | None:
    """``{M, F, A}`` as a string; None for ``undefined`` or anything else."""
    if isinstance(term, tuple) and len(term) == 3:
        module, function, arity = term
        if isinstance(arity, list):  # {M, F, Args} from some process_info items
            arity = len(arity)
        return format_mfa(module, function, arity, syntax)
    return None


def _plain(text: str) -> bool:
    return bool(text) and (text[0].islower() or text[0] == "_") and all(
        c.isalnum() or c in "_?!@" for c in text)


def _quote_erlang(text: str) -> str:
    if text and text[0].islower() and all(c.isalnum() or c in "_@" for c in text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def known_as(name: Any, pid: Any) -> str:
    """A process as people know it: its registered name when it had one at
    that moment, else its pid. A missing name is None or, in a pandas string
    column, NaN."""
    return name if isinstance(name, str) and name else str(pid)

