"""What the magics need from IPython beyond registering them: the input
transform that lets ``%beam_explain`` take any question, the library's
errors shown in one line, and a clean unload.

    %beam_explain Why isn't WorkerB receiving all updates?

IPython reads a line ending in ``?`` as a help request (``updates?``) before
any magic runs. ``protect_explain_questions``, a cleanup transform (they run
first), turns a ``%beam_explain`` line into the call IPython would have made,
the question a string in it, so the ``?`` is the question's.
``%beam_explain?`` (no space: help on the magic) is left alone, and so are
cell magics' bodies.

A ``MicroscopeError`` raised by a call in a cell (``mic.attach``,
``s.trace``, a query) shows as a magic's ``UsageError`` does: its one-line
message, which already says what happened and what to do. Its frames stay
one click away: in a notebook, a collapsed "traceback" under the cell; in a
terminal, ``traceback.print_last()``; ``%debug`` works in both.
"""

from __future__ import annotations

import html
import re
import sys
import traceback
from typing import Any

from .errors import MicroscopeError

__all__ = ["protect_explain_questions", "install", "uninstall", "show_library_error"]

_EXPLAIN_LINE = re.compile(r"^(?P<indent>[ \t]*)(?P<target>[A-Za-z_][\w.]*\s*=\s*)?"
                           r"%beam_explain(?P<question>[ \t].*)?$")


def protect_explain_questions(lines: list[str]) -> list[str]:
    """An IPython cleanup transform: ``%beam_explain QUESTION?`` runs the magic with
    the whole question, its ``?`` included."""
    if lines and lines[0].lstrip().startswith("%%"):
        return lines
    out = []
    for line in lines:
        body = line.rstrip("\r\n")
        found = _EXPLAIN_LINE.match(body)
        if found:
            question = (found["question"] or "").strip()
            line = (f"{found['indent']}{found['target'] or ''}get_ipython().run_line_magic("
                    f"'beam_explain', {question!r}){line[len(body):]}")
        out.append(line)
    return out


def show_library_error(shell: Any, etype: type, value: BaseException, tb: Any,
                       tb_offset: Any = None) -> list[str]:
    """IPython's handler for ``MicroscopeError``: the one line, frames behind a toggle."""
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb   # %debug, print_last
    frames = "".join(traceback.format_exception(etype, value, tb))
    if getattr(shell, "kernel", None) is not None:      # a notebook: a toggle above the line
        from IPython.display import display

        display({"text/plain": "", "text/html": "<details><summary>traceback</summary>"
                 f"<pre>{html.escape(frames)}</pre></details>"}, raw=True)
        stb = [f"{etype.__name__}: {value}"]
    else:
        stb = [f"{etype.__name__}: {value}",
               "(the frames: import traceback; traceback.print_last())"]
    shell._showtraceback(etype, value, stb)
    return stb


def install(ipython: Any, magics: type) -> None:
    """Register ``magics`` and the transform (once, however often it is loaded)."""
    ipython.register_magics(magics)
    if not ipython.custom_exceptions:       # never over another extension's handler
        ipython.set_custom_exc((MicroscopeError,), show_library_error)
    cleanup = ipython.input_transformer_manager.cleanup_transforms
    if protect_explain_questions not in cleanup:
        cleanup.append(protect_explain_questions)


def uninstall(ipython: Any, magics: type) -> None:
    """Take back exactly what ``install`` put there: IPython has no unregister, so the
    magics ``magics`` defined (not another extension's of the same name) are removed."""
    registered = ipython.magics_manager.magics
    for kind, names in magics.magics.items():
        for name in names:
            if isinstance(getattr(registered[kind].get(name), "__self__", None), magics):
                del registered[kind][name]
    ipython.magics_manager.registry.pop(magics.__name__, None)
    cleanup = ipython.input_transformer_manager.cleanup_transforms
    while protect_explain_questions in cleanup:
        cleanup.remove(protect_explain_questions)
    if ipython.custom_exceptions == (MicroscopeError,):
        ipython.set_custom_exc((), None)
