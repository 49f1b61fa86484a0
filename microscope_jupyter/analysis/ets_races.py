"""Read-modify-write races on ETS: a process reads a key with ``ets:lookup``,
computes, and writes it back with ``ets:insert``, while another process
writes the same key in between; whichever writes last wins, and the other's
update is lost.

    ets_races(facts)   # [Cause("ets_race", ...)]

It needs call tracing of the ETS functions (the default trace has none):
``s.trace(modules=["ets:lookup/2", "ets:insert/2"])``. From the calls: each
process's read-modify-write pairs (a lookup of a key that found it, then
that process's next insert of the same key) and the window between them.
Two kinds of evidence, the first the stronger:

- another traced process's insert of the key inside that window: an
  interleaving seen, whose write the pair's insert overwrote;
- the key found changed by someone else between the process's own insert
  and its next lookup (it read back what it did not write): other writers,
  outside the recording, are changing the key the process updates
  non-atomically.

Reads that found nothing (an insert-if-absent) are no read-modify-write.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..render.elixir import render
from ..store.schema import KIND_CODES
from .detector_kit import Cause
from .facts import Facts

__all__ = ["ets_races", "ETS_CALLS"]

ETS_CALLS = ("ets:lookup/2", "ets:insert/2")     # what it reads: s.trace(modules=ETS_CALLS)
_ETS = re.compile(r"^:?ets[.:](lookup|insert)/2$")
MIN_CHANGED = 3       # reads that found someone else's write, at least, without a seen overlap
MIN_PAIRS = 10        # read-modify-write pairs of that process, at least, for that


def _key(term: Any, syntax: str) -> str:
    return render(term, syntax, 200)


def ets_races(facts: Facts) -> list[Cause]:
    raw = facts.store.raw()
    if not (raw.kind == KIND_CODES["call"]).any():     # no call tracing: nothing to read
        return []
    calls = facts.calls()
    which = calls["mfa"].astype(str).str.extract(_ETS)[0]
    calls = calls[which.notna()]
    if calls.empty:
        return []
    syntax = facts.store.syntax
    ops = []    # (start ns, pid, name, op, table, key, value or result, call_seq)
    for row, op in zip(calls.itertuples(index=False), which[which.notna()].tolist()):
        args = row.args
        if not (isinstance(args, list) and len(args) == 2):
            continue
        table = _key(args[0], syntax)
        if op == "lookup":
            if row.status != "returned" or not (isinstance(row.result, list) and row.result):
                continue    # found nothing, or raised: no value read
            ops.append((row.started_at.value, row.pid, row.name, "read", table,
                        _key(args[1], syntax), row.result[0], row.call_seq))
        else:
            objects = args[1] if isinstance(args[1], list) else [args[1]]
            for obj in objects:
                if isinstance(obj, tuple) and obj:
                    ops.append((row.started_at.value, row.pid, row.name, "write", table,
                                _key(obj[0], syntax), obj, row.call_seq))
    by_key: dict[tuple[str, str], list] = {}
    for op in sorted(ops, key=lambda o: o[0]):
        by_key.setdefault((op[4], op[5]), []).append(op)
    out = []
    for (table, key), seq in by_key.items():
        cause = _race(facts, table, key, seq)
        if cause is not None:
            out.append(cause)
    return out


def _race(facts: Facts, table: str, key: str, ops: list) -> Cause | None:
    writes = [(o[0], o[1], o[7]) for o in ops if o[3] == "write"]
    write_ts = np.array([w[0] for w in writes], dtype=np.int64)
    pairs: dict[str, list] = {}      # pid -> [(read op, write op)]
    changed: dict[str, list] = {}    # pid -> [(its write, the read that found another value)]
    pending: dict[str, Any] = {}
    last_write: dict[str, Any] = {}
    last_by: dict[str, int] = {}     # pid -> ts of its last write, for "others wrote since"
    for op in ops:
        pid = op[1]
        if op[3] == "read":
            mine = last_write.get(pid)
            # changed since its own write, and no traced writer explains it
            if mine is not None and op[6] != mine[6] and not any(
                    mine[0] < ts <= op[0] for who, ts in last_by.items() if who != pid):
                changed.setdefault(pid, []).append((mine, op))
            pending[pid] = op
        else:
            if pid in pending:
                pairs.setdefault(pid, []).append((pending.pop(pid), op))
            last_write[pid] = op
            last_by[pid] = op[0]
    overlaps: list[tuple] = []
    for pid, mine in pairs.items():
        for read, write in mine:
            lo, hi = np.searchsorted(write_ts, [read[0], write[0]], side="right")
            others = [w for w in writes[lo:hi] if w[1] != pid and w[0] < write[0]]
            if others:
                overlaps.append((read, write, others))
    racing = [pid for pid in pairs if len(pairs[pid]) >= MIN_PAIRS
              and len(changed.get(pid, [])) >= MIN_CHANGED]
    if not overlaps and not racing:
        return None
    names = {o[1]: (o[2] if isinstance(o[2], str) else o[1]) for o in ops}
    gaps = [(w[0] - r[0]) / 1e3 for mine in pairs.values() for r, w in mine]
    window = float(np.median(gaps)) if gaps else 0.0
    where = f"the key {key} of the ETS table {table}"
    if overlaps:
        who = sorted({names[r[1]] for r, _, _ in overlaps} | {names[w[1]] for *_, ws in overlaps
                                                               for w in ws})
        read, write, others = overlaps[0]
        summary = (f"Read-modify-write race on {where}: {', '.join(who[:4])} each read it with "
                   f"ets:lookup and write it back with ets:insert about {window:.0f} us later, "
                   f"which is not atomic, and {len(overlaps)} of those windows had another "
                   f"process's insert of the same key inside them (first: {names[read[1]]} read "
                   f"at seq {read[7]}, {names[others[0][1]]} wrote at seq {others[0][2]}, "
                   f"{names[write[1]]} overwrote it at seq {write[7]}): each is a lost update, "
                   "the concurrent write overwritten.")
        evidence = [x for r, w, ws in overlaps[:10] for x in (r[7], ws[0][2], w[7])]
        confidence = 0.9
    else:
        pid = max(racing, key=lambda p: len(changed[p]))
        mine, seen = changed[pid][0]
        summary = (f"Read-modify-write race on {where}: {names[pid]} reads it with ets:lookup "
                   f"and writes it back with ets:insert about {window:.0f} us later "
                   f"({len(pairs[pid])} times), which is not atomic, while other processes "
                   f"write the same key concurrently: {len(changed[pid])} times it read back a "
                   f"value it had not written (it wrote {render(mine[6], facts.store.syntax, 60)}"
                   f" at seq {mine[7]}, then read {render(seen[6], facts.store.syntax, 60)} at "
                   f"seq {seen[7]}). Whatever they write between its lookup and its insert is "
                   "overwritten: lost updates. The other "
                   "writers are outside the recording (processes the trace did not follow); "
                   "tracing them too, s.trace(modules=[\"ets:lookup/2\", \"ets:insert/2\"]) from "
                   "before they start, shows each interleaving.")
        evidence = [x for m, s in changed[pid][:10] for x in (m[7], s[7])]
        confidence = 0.65
        who = [names[pid]]
    summary += (" Make the update atomic: ets:update_counter/3 or ets:update_element/3, or "
                "serialise every write of the key through one process (the table's owner).")
    return Cause("ets_race", confidence, summary, sorted(set(evidence)), who + [table])
