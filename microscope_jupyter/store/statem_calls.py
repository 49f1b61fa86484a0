"""A gen_statem's transitions with its data: the hook's reports joined to the
call trace of its callback module.

sys debug events give a gen_statem's state names, never its data, and say
nothing of state enter calls. The agent (v31) call-traces the callbacks its
module exports, for the hooked gen_statems alone, with their returns. One
process runs one callback at a time, and its call, return and report events
are in order, so each report's callbacks are the calls between the
previous report of that process and it:

    steps = statem_steps(store, pid_ids)   # seq of a state event -> StatemStep

the callback the event went to (its arguments the event type, content and
data before), what it returned (next state, data, actions), then the state
enter calls that followed, whose data is the data after. Without those calls
(an older agent, a pattern another tool held, a payload over the limit) a
step has no data (``STATE_UNKNOWN``) and its callback is ``handle_event``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..beam.etf import decode
from ..errors import DecodeError
from ..beam.terms import Atom
from .otp import STATE_UNKNOWN
from .schema import KIND_CODES

__all__ = ["StatemStep", "statem_steps", "timers", "result_data"]

_CALL, _RETURN, _EXCEPTION = KIND_CODES["call"], KIND_CODES["return"], KIND_CODES["exception"]
_ENTER = Atom("enter")
_KEEPS = {Atom("keep_state_and_data"), Atom("repeat_state_and_data")}
_WITH_DATA = {Atom("next_state"): 2, Atom("keep_state"): 1, Atom("repeat_state"): 1}
_STOPS = {Atom("stop"): 2, Atom("stop_and_reply"): 3}
_TIMEOUTS = {Atom("timeout"), Atom("state_timeout")}


@dataclass
class StatemStep:
    """What one reported event of a gen_statem called and left."""

    module: Any = None                 # the callback module (an Atom), None if not traced
    callback: str = "handle_event"     # "connected/3", "handle_event/4"
    data_before: Any = STATE_UNKNOWN
    data_after: Any = STATE_UNKNOWN
    actions: list = field(default_factory=list)   # the callback's, then its enter calls'
    enters: int = 0                    # state enter calls made after it


def statem_steps(store, statem_rows: dict[int, list[tuple[int, Any, Any]]]) -> dict[int, StatemStep]:
    """seq -> StatemStep for the state events of gen_statems.

    ``statem_rows``: pid id -> [(seq, event type, content)] of its state
    events, in order."""
    if not statem_rows:
        return {}
    raw = store.raw()
    kinds = raw.kind
    mine = np.flatnonzero(np.isin(kinds, [_CALL, _RETURN, _EXCEPTION])
                          & np.isin(raw.pid, list(statem_rows)))
    # by time, not seq: a report is taken from the hook's table at a batch, so
    # it may be stored after trace messages that followed it; one process's
    # clock orders its calls and its reports exactly
    mine = mine[np.argsort(raw.ts_ns[mine], kind="stable")]
    by_pid: dict[int, list[int]] = {}
    for seq, gid in zip(mine.tolist(), raw.pid[mine].tolist()):
        by_pid.setdefault(gid, []).append(seq)
    out = {}
    for gid, rows in statem_rows.items():
        calls = by_pid.get(gid, [])
        at, data = 0, STATE_UNKNOWN
        for seq, etype, content in sorted(rows, key=lambda r: raw.ts_ns[r[0]]):
            start, ts = at, raw.ts_ns[seq]
            while at < len(calls) and raw.ts_ns[calls[at]] <= ts:
                at += 1
            step = _step(store, calls[start:at], etype, content)
            if step.module is None and data is not STATE_UNKNOWN:
                step.data_before = data       # (no trace of it: its data is not known after)
            out[seq] = step
            data = step.data_after
    return out


def _step(store, window: list[int], etype: Any, content: Any) -> StatemStep:
    raw = store.raw()
    main = None
    for i, seq in enumerate(window):
        if raw.kind[seq] == _CALL:
            args = _term(store, seq)
            if isinstance(args, list) and len(args) in (3, 4) and args[0] == etype \
                    and args[1] == content:
                main = i
    step = StatemStep()
    if main is None:
        return step
    mfa = store.term_of(int(raw.mfa[window[main]]))
    if not (isinstance(mfa, tuple) and len(mfa) == 3):
        return step
    step.module, step.callback = mfa[0], f"{mfa[1]}/{mfa[2]}"
    args = _term(store, window[main])
    step.data_before = data = args[-1]
    depth = 0
    for seq in window[main:]:
        if store.term_of(int(raw.mfa[seq]))[:1] != (mfa[0],):
            continue                      # another module's call, traced by modules=
        kind = raw.kind[seq]
        if kind == _CALL:
            depth += 1
            if depth == 1 and seq != window[main]:
                step.enters += _term(store, seq)[:1] == [_ENTER]
        elif depth:
            depth -= 1
            if depth == 0 and kind == _RETURN:
                result = _term(store, seq)
                data = result_data(result, data)
                step.actions += _actions(result)
    step.data_after = data
    return step


def result_data(result: Any, data: Any) -> Any:
    """The data a callback's result leaves (``data`` where it keeps it)."""
    if isinstance(result, tuple) and result and result[0] in _WITH_DATA \
            and len(result) > _WITH_DATA[result[0]]:
        return result[_WITH_DATA[result[0]]]
    if isinstance(result, tuple) and result and result[0] in _STOPS \
            and len(result) > _STOPS[result[0]]:
        return result[_STOPS[result[0]]]
    if isinstance(result, tuple) and len(result) == 2 and result[0] == Atom("$microscope_truncated"):
        return STATE_UNKNOWN
    return data


def _actions(result: Any) -> list:
    if not isinstance(result, tuple) or not result:
        return []
    head = result[0]
    if head in _KEEPS:
        actions = result[1] if len(result) > 1 else []
    elif head in _WITH_DATA and len(result) > _WITH_DATA[head] + 1:
        actions = result[_WITH_DATA[head] + 1]
    else:
        return []
    return actions if isinstance(actions, list) else [actions]


def _term(store, seq: int) -> Any:
    try:
        return decode(store.raw().payload(seq))
    except DecodeError:
        return None


def timers(actions: list) -> list[tuple[Any, Any, Any]]:
    """(event type, time, content) of the timeouts ``actions`` start:
    ``state_timeout``, ``timeout`` (an event timeout, also a bare integer) and
    ``{:timeout, name}`` (generic); cancels (``:infinity``) left out."""
    out = []
    for action in actions:
        if isinstance(action, int):
            out.append((Atom("timeout"), action, action))
        elif isinstance(action, tuple) and len(action) in (3, 4):
            kind = action[0]
            generic = isinstance(kind, tuple) and len(kind) == 2 and kind[0] == Atom("timeout")
            if (kind in _TIMEOUTS or generic) and action[1] != Atom("infinity"):
                out.append((kind, action[1], action[2]))
    return out
