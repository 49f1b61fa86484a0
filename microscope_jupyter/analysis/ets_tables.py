"""ETS tables that vanished: processes crashing with badarg on a table that no
longer exists, and the process whose exit most likely took it away.

    lost_tables(facts)   # [Cause("ets_table_lost", ...)]

An ETS table belongs to the process that created it and is deleted when that
process exits, unless the table has an heir. A lookup on a deleted table
raises ``badarg`` (from OTP 24 with ``error_info`` cause ``id``: the table
identifier refers to no table). The default trace does not record ETS calls,
so the owner is inferred: the last process to exit before the first such
crash, other than the crashers and their own kind (processes spawned by the
same parent with the same entry point).
"""

from __future__ import annotations

from typing import Any

from ..beam.terms import Atom
from ..render.elixir import render
from ..store.otp import normal_exit
from .detector_kit import Cause
from .facts import Facts
from .lifecycle import Lives, lifecycle

__all__ = ["lost_tables"]

_OWNER_WINDOW_NS = 10 * 10**9    # an owner's exit this long before the first crash, at most
_ETS, _BADARG = Atom("ets"), Atom("badarg")


def lost_tables(facts: Facts) -> list[Cause]:
    lives = lifecycle(facts)
    if not lives.exit_seq:
        return []
    terms = facts.store.frame()["term"]
    raw = facts.store.raw()
    tables: dict[Any, list[tuple[int, str, str, Any]]] = {}
    for pid, seq in lives.exit_seq.items():
        payload = raw.payload(seq)
        if b"badarg" not in payload or b"ets" not in payload:
            continue      # decided on the bytes: most exits are no such crash
        found = _ets_badarg(terms.iloc[seq])
        if found is not None:
            table, function, cause = found
            tables.setdefault(table, []).append((seq, pid, function, cause))
    return [_cause(facts, lives, terms, table, sorted(crashes))
            for table, crashes in tables.items()]


def _ets_badarg(reason: Any) -> tuple[Any, str, Any] | None:
    """(table, "ets:lookup/2", error_info cause or None) of a badarg raised by ets."""
    if not (isinstance(reason, tuple) and len(reason) == 2 and reason[0] == _BADARG
            and isinstance(reason[1], list) and reason[1]):
        return None
    top = reason[1][0]
    if not (isinstance(top, tuple) and len(top) == 4 and top[0] == _ETS
            and isinstance(top[2], list) and top[2]):
        return None
    cause = None
    for item in top[3] if isinstance(top[3], list) else []:
        if isinstance(item, tuple) and len(item) == 2 and str(item[0]) == "error_info" \
                and isinstance(item[1], dict):
            cause = item[1].get(Atom("cause"))
    return top[2][0], f"ets:{top[1]}/{len(top[2])}", cause


def _cause(facts: Facts, lives: Lives, terms, table: Any,
           crashes: list[tuple[int, str, str, Any]]) -> Cause:
    raw = facts.store.raw()
    syntax = facts.syntax
    first = crashes[0][0]
    crashers = {pid for _, pid, _, _ in crashes}
    kinds = {(lives.parent.get(p), lives.spawn_mfa.get(p)) for p in crashers}
    functions = sorted({f for _, _, f, _ in crashes})
    name = render(table, syntax, 60)
    gone = any(c == Atom("id") for *_, c in crashes)
    spawners = sorted({lives.who(p) for p, _ in kinds if p})
    text = (f"{len(crashers)} process(es)"
            + (f" (spawned by {', '.join(spawners[:3])})" if spawners else "")
            + f" crashed with badarg in {', '.join(functions)} on the "
            f"ETS table {name}, from seq {first} on"
            + (" (the error says the table does not exist: error_info cause id)" if gone
               else "") + ". ETS deletes a table when the process that owns it exits, unless "
            "the table has an heir.")
    t0 = int(raw.ts_ns[first])
    candidates = [(seq, pid) for pid, seq in lives.exit_seq.items()
                  if seq < first and pid not in crashers
                  and (lives.parent.get(pid), lives.spawn_mfa.get(pid)) not in kinds
                  and t0 - int(raw.ts_ns[seq]) <= _OWNER_WINDOW_NS]
    evidence = [s for s, *_ in crashes[:20]]
    owner = None
    if candidates:
        seq, pid = max(candidates, key=lambda c: (c[0], bool(lives.name(c[1]))))
        owner = lives.who(pid, seq)
        before = (t0 - int(raw.ts_ns[seq])) / 1e6
        worked = [p for p, s in lives.exit_seq.items() if s < seq and p not in crashers
                  and (lives.parent.get(p), lives.spawn_mfa.get(p)) in kinds
                  and normal_exit(terms.iloc[s])]
        text += (f" The table's owner was most likely {owner}, the last process to exit before "
                 f"the first badarg: it ended ({render(terms.iloc[seq], syntax, 60)}, seq {seq}) "
                 f"{before:,.1f} ms before it, and the table was deleted with it.")
        if worked:
            text += (f" {len(worked)} process(es) of the crashers' own kind had ended normally "
                     "before that exit: the table still worked then.")
        evidence.append(seq)
    else:
        text += (" No process exited shortly before the first crash in this recording: the "
                 "owner exited before it began, or the table was deleted (ets:delete).")
    text += (" Keep the table in a process that lives as long as its readers (a supervised "
             "owner that does little else), or give it an heir ({heir, Pid, Data}) to take it "
             "over. The default trace does not record ETS calls: "
             "s.trace(modules=[\"ets:new/2\", \"ets:delete/1\"]) shows who creates and deletes "
             "it.")
    owners = [owner] if owner else []
    return Cause("ets_table_lost", 0.85 if owner else 0.6, text, sorted(set(evidence)),
                 owners + sorted(lives.who(p) for p in crashers)[:3])
