"""How the magics read their words: shell-like splitting, ``--name value``
options with a "did you mean" for near misses, and a library error turned
into IPython's one-line ``UsageError``.

    positional, opts = options(split(line), {"port": int, "allow-trace": None}, usage)
    return run(lambda: session.explain(question))
"""

from __future__ import annotations

import difflib
import shlex
from typing import Any, Callable

from IPython.core.error import UsageError

from .errors import MicroscopeError

__all__ = ["split", "options", "run", "suggest"]


def suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" Did you mean {close[0]}?" if close else ""


def split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"could not parse the arguments ({exc})") from None


def options(words: list[str], spec: dict[str, type | None], usage: str) -> tuple[list[str], dict]:
    """``--name value`` / ``--flag`` options per ``spec``; the rest are positionals."""
    positional, options = [], {}
    it = iter(words)
    for word in it:
        if word.startswith("--"):
            name = word[2:]
            if name not in spec:
                raise UsageError(f"unknown option {word}.{suggest(word, ['--' + k for k in spec])}"
                                 f" Usage: {usage}")
            kind = spec[name]
            if kind is None:
                options[name] = True
                continue
            value = next(it, None)
            if value is None:
                raise UsageError(f"{word} needs a value. Usage: {usage}")
            try:
                options[name] = kind(value)
            except ValueError:
                raise UsageError(f"{word} needs {kind.__name__}, got {value!r}") from None
        else:
            positional.append(word)
    return positional, options


def run(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except MicroscopeError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
