"""Annotations: who concluded what, pinned to the recording.

    s.annotate(12, "the update WorkerB never took", author="ana")
    s.annotate(s.findings().iloc[0], "known since v1.2: ticket 481")
    s.annotate(s.explain().causes.iloc[0], "confirmed with the fix in #92")
    s.annotate((40, 95), "the backlog builds here")     # seqs or timestamps
    s.annotations()                                    # one row each

A note is anchored to events (``seq``..``end_seq``) and, when its target
has one, a process, so every widget can place it and a saved recording or a
report carries it. Notes are kept with the recording (``s.save`` writes
them into its metadata; ``mic.load`` reads them back).
"""

from __future__ import annotations

import datetime as _dt
import getpass
import numbers
import os
import weakref
from typing import Any, Callable

import pandas as pd

from ..errors import MicroscopeError
from .facts import Facts

__all__ = ["ANNOTATION_COLUMNS", "make_annotation", "annotations_frame", "default_author",
           "watch", "notify"]

ANNOTATION_COLUMNS = ["id", "target", "seq", "end_seq", "pid", "name", "text", "author",
                      "created_at"]


# Who shows a recording's notes (its widgets): told when one is added, so a
# note appears on every open view at once. Weak both ways: a closed widget or
# a dropped session leaves nothing behind.
_WATCHERS: "weakref.WeakKeyDictionary[Any, list]" = weakref.WeakKeyDictionary()


def watch(recorded: Any, method: Callable[[], None]) -> None:
    """Call ``method`` (a bound method, held weakly) whenever ``recorded`` gets a note."""
    _WATCHERS.setdefault(recorded, []).append(weakref.WeakMethod(method))


def notify(recorded: Any) -> None:
    alive = []
    for ref in _WATCHERS.get(recorded, []):
        method = ref()
        if method is not None:
            method()
            alive.append(ref)
    if recorded in _WATCHERS:
        _WATCHERS[recorded] = alive


def default_author() -> str:
    """``$MICROSCOPE_AUTHOR``, else the login name (a note always says who wrote it)."""
    try:
        return os.environ.get("MICROSCOPE_AUTHOR") or getpass.getuser()
    except (KeyError, OSError):   # no login name in a bare container
        return "unknown"


def make_annotation(facts: Facts, target: Any, text: str, author: str | None,
                    number: int) -> dict:
    """The note as saved: its target resolved to seqs (and a process when it has one)."""
    if not isinstance(text, str) or not text.strip():
        raise MicroscopeError("an annotation needs some text: s.annotate(target, \"what you "
                              "concluded\")")
    n = len(facts.store)
    if n == 0:
        raise MicroscopeError("the recording is empty: there is nothing to annotate yet")
    kind, seq, end, pid = _resolve(facts, target, n)
    events = facts.store.frame()
    if pid is None and kind == "event":
        pid = events["pid"].iloc[seq]
    return {"id": number, "target": _describe(kind, target, seq, end, events),
            "seq": int(seq), "end_seq": int(end), "pid": pid if isinstance(pid, str) else None,
            "name": _name(facts.store, pid, seq), "text": text.strip(), "author": author or default_author(),
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def annotations_frame(notes: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame([{k: note.get(k) for k in ANNOTATION_COLUMNS} for note in notes],
                         columns=ANNOTATION_COLUMNS)
    for column in ("id", "seq", "end_seq"):
        frame[column] = frame[column].astype("int64")
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def _resolve(facts: Facts, target: Any, n: int) -> tuple[str, int, int, Any]:
    """(what it is, first seq, last seq, pid or None) of an annotation's target."""
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        return "event", _seq(int(target), n), _seq(int(target), n), None
    fields = _fields(target)
    if "summary" in fields and "first_seq" in fields:            # a finding
        first = _seq(int(fields["first_seq"]), n)
        evidence = [int(s) for s in (fields.get("evidence") or []) if 0 <= int(s) < n]
        last = fields.get("last_seq")
        end = max([first] + evidence + ([int(last)] if _is_int(last) else []))
        return "finding", first, min(end, n - 1), fields.get("pid")
    if "evidence" in fields and "rank" in fields:                # a cause of s.explain()
        evidence = sorted(int(s) for s in fields["evidence"] if 0 <= int(s) < n)
        if not evidence:
            raise MicroscopeError("that cause has no evidence in this recording to pin a note to")
        procs = list(fields.get("processes") or [])
        return "cause", evidence[0], evidence[-1], procs[0] if len(procs) == 1 else None
    if isinstance(target, (tuple, list)) and len(target) == 2:   # a range: seqs or times
        tt = facts.history()
        start, end = (tt.seq_of(t) for t in target)
        return "range", min(start, end), max(start, end), None
    raise MicroscopeError(
        f"cannot annotate {type(target).__name__} {str(target)[:60]!r}: give an event seq, a row "
        "of s.findings(), a row of s.explain().causes, or a (start, end) range of seqs or times")


def _name(store: Any, pid: Any, seq: int) -> str | None:
    """The name ``pid`` held at ``seq``, else the last it held (the store's one rule)."""
    if not isinstance(pid, str):
        return None
    try:
        gids = store.pid_ids(pid)
    except MicroscopeError:
        return None
    names = store.names()
    for gid in gids:
        name = names.name_at(gid, seq) or names.last_names().get(gid)
        if name:
            return name
    return None


def _fields(target: Any) -> dict:
    if isinstance(target, pd.Series):
        return target.to_dict()
    if isinstance(target, dict):
        return target
    if hasattr(target, "__dataclass_fields__"):
        return {k: getattr(target, k) for k in target.__dataclass_fields__}
    if hasattr(target, "_asdict"):                               # an itertuples() row
        return target._asdict()
    return {}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _seq(seq: int, n: int) -> int:
    if not 0 <= seq < n:
        raise MicroscopeError(f"event {seq} is outside the recording: seqs run from 0 to {n - 1}")
    return seq


def _describe(kind: str, target: Any, seq: int, end: int, events: pd.DataFrame) -> str:
    fields = _fields(target)
    if kind == "event":
        return f"event #{seq} ({events['kind'].iloc[seq]})"
    if kind == "finding":
        who = fields.get("name") or fields.get("pid")
        return f"finding: {fields.get('kind')}" + (f" of {who}" if isinstance(who, str) else "")
    if kind == "cause":
        return f"cause: {fields.get('kind')}"
    return f"events #{seq}–#{end}"
