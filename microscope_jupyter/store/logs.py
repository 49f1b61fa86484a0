"""Log events: what the node logged while a trace ran (Logger and logger calls,
crash and supervisor reports), forwarded by the agent's logger handler
(``elixir_hooks/agent/microscope_agent_log.erl``), as the store shows them.

    log_entry((Atom("error"), "sent 3, table says 2", {Atom("domain"): [Atom("elixir")]}))
    # {"level": "error", "message": "sent 3, table says 2", "domain": ["elixir"]}
    log_text(entry)     # "error: sent 3, table says 2"

The header carries the rest: the process the event is about (pid), the
function that logged (mfa), a supervisor report's child (peer) and the level
as a number (aux, ``schema.LOG_LEVELS``). A report keeps beside its text what
analysis reads: its ``label`` (``("supervisor", "shutdown")``), a supervisor
report's ``context``, ``reason``, ``supervisor`` and ``child_id``, a crash's
``reason``, each only when small (the text has the rest).
"""

from __future__ import annotations

from typing import Any

from ..beam.etf import as_text
from ..beam.terms import Atom
from ..render.elixir import render

__all__ = ["log_entry", "log_text", "is_restart_intensity_report"]


def log_entry(term: Any) -> Any:
    """The agent's ``{Level, Text, Summary}`` as a dict; anything else (a payload
    cut to a summary) as it is."""
    if not (isinstance(term, tuple) and len(term) == 3 and isinstance(term[2], dict)):
        return term
    level, text, summary = term
    entry: dict[str, Any] = {"level": str(level), "message": _text(text)}
    for key, value in summary.items():
        key = str(key)
        if key == "file":
            value = _text(value)
        elif key == "label" and isinstance(value, tuple):
            value = tuple(str(part) for part in value)
        elif key == "domain" and isinstance(value, list):
            value = [str(part) for part in value]
        elif key == "context" and isinstance(value, Atom):
            value = str(value)
        entry[key] = value
    return entry


def log_text(entry: Any, syntax: str, limit: int) -> str:
    """``error: sent 3, table says 2``: the level, then the message as logged."""
    if not isinstance(entry, dict):
        return render(entry, syntax, limit)
    message = entry["message"]
    if not isinstance(message, str):
        message = render(message, syntax, limit)
    return f"{entry['level']}: {message}"[:limit]


def is_restart_intensity_report(entry: Any) -> bool:
    """A supervisor's report that it gave up: its children restarted more often
    than its intensity allows, so it shut down (and its subtree with it)."""
    return (isinstance(entry, dict) and entry.get("context") == "shutdown"
            and entry.get("reason") == Atom("reached_max_restart_intensity"))


def _text(value: Any) -> Any:
    """A binary or a charlist as str when it is UTF-8; other terms as they are."""
    if isinstance(value, list) and value and all(type(c) is int and 0 <= c < 0x110000
                                                 for c in value):
        return "".join(map(chr, value))
    return as_text(value)
