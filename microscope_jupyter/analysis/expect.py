"""Expected versus actual state: ``s.expect(proc, rule)``.

Two kinds of rule:

- a check, ``rule(before, message, after)``, returning True (fine), False
  (broken) or a string (broken, and why);
- an expected-state function, ``expected = rule(before, message)``, whose
  result is compared structurally with the state actually reached.

Returns one row per transition that broke the rule, with the diff between
expected and actual; each also becomes a ``state_violation`` finding. A
transition whose states the agent did not copy (too large, or before its
hook had a base) cannot be judged and is skipped; ``.attrs["unjudged"]``
counts them.
"""

from __future__ import annotations

import inspect
from typing import Callable

import pandas as pd

from ..errors import QueryError
from ..render.elixir import render
from ..store.otp import state_recorded
from .diff import diff, render_diff

__all__ = ["check_expectation", "expects_state", "VIOLATION_COLUMNS"]

VIOLATION_COLUMNS = ["seq", "ts", "pid", "name", "callback", "message", "before", "after",
                     "expected", "reason", "diff", "diff_text"]


def expects_state(rule: Callable) -> bool:
    """Whether ``rule`` is an expected-state function, ``(before, message) ->
    expected``, rather than a check of three arguments."""
    try:
        params = [p for p in inspect.signature(rule).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    return len(params) == 2


def check_expectation(states: pd.DataFrame, rule: Callable, syntax: str = "elixir") -> pd.DataFrame:
    if not callable(rule):
        raise QueryError("rule must be a callable: (before, message, after) -> bool | str, "
                         "or (before, message) -> expected state")
    expected_state = expects_state(rule)
    rows = []
    unjudged = 0
    for row in states.itertuples(index=False):
        if not (state_recorded(row.before) and state_recorded(row.after)):
            unjudged += 1
            continue
        expected = None
        try:
            if expected_state:
                expected = rule(row.before, row.message)
                changes = diff(expected, row.after)
                if not changes:
                    continue
                reason = f"state after {row.callback} differs from the expected state"
            else:
                verdict = rule(row.before, row.message, row.after)
                if verdict is True or verdict is None or verdict == "":
                    continue
                reason = verdict if isinstance(verdict, str) else "the rule returned False"
                changes = diff(row.before, row.after)
        except Exception as exc:  # noqa: BLE001 - a rule that raises is a broken rule, say so
            reason = f"the rule raised {type(exc).__name__}: {exc}"
            changes = []
        rows.append((row.seq, row.ts, row.pid, row.name, row.callback, row.message, row.before,
                     row.after, expected, reason, changes, render_diff(changes, syntax)))
    frame = pd.DataFrame(rows, columns=VIOLATION_COLUMNS)
    for column in ("message", "before", "after", "expected", "diff"):
        frame[column] = pd.Series([r[VIOLATION_COLUMNS.index(column)] for r in rows],
                                  dtype=object, index=frame.index)
    frame["message_text"] = [render(m, syntax, 120) for m in frame["message"]]
    frame.attrs["unjudged"] = unjudged
    return frame
