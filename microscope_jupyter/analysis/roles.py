"""What a process is, in words that hold from one run to the next.

    roles(facts)["<0.705.0>"]     # 'a child of Search.Server running :search.task/1'
    flows(facts)                  # seq, ts_ns, flow: 'Pool -> a child of Pool {:job, _}'

Pids differ between two runs of the same build; a comparison lines processes
up by what they are instead: a registered name; else the nearest named
ancestor (``a child of``, ``a descendant of``) and what the process runs (the
function it was spawned with, or its initial call when the trace began),
where that says more than proc_lib's or a fun's wrapper; else ``an unnamed
process``. Messages line up by sender, receiver and the message's shape
(``{:tick, _}``), read off the payload's bytes (no message is decoded).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..store.otp import payload_shape
from .facts import Facts


__all__ = ["roles", "role_of", "flows", "UNNAMED"]

UNNAMED = "an unnamed process"
_WRAPPERS = (":proc_lib.init_p/", ":erlang.apply/", ":proc_lib.start_")   # say nothing


def roles(facts: Facts) -> dict[str, str]:
    """pid (text) -> its name, or what it is (see the module doc)."""
    return facts.cached("roles", lambda: _roles(facts))


def role_of(facts: Facts, pid) -> str:
    """What ``pid`` is; a peer that is a registered name is that name."""
    if not isinstance(pid, str):
        return UNNAMED
    return roles(facts).get(pid) or (pid if not pid.startswith("<") else UNNAMED)


def flows(facts: Facts) -> pd.DataFrame:
    """Every send: its seq, time (ns) and flow, ``sender -> receiver shape``."""
    return facts.cached("flows", lambda: _flows(facts))


def _roles(facts: Facts) -> dict[str, str]:
    tree = facts.recorded_tree()
    names = {p: n for p, n in zip(tree["pid"], tree["name"]) if isinstance(n, str)}
    parents = {p: up for p, up in zip(tree["pid"], tree["parent"]) if isinstance(up, str)}
    runs = {p: c for p, c in zip(tree["pid"], tree["initial_call"]) if isinstance(c, str)}
    frame = facts.store.frame()
    spawns = frame[(frame["kind"] == "spawn") & frame["peer"].notna() & frame["mfa"].notna()]
    runs.update(zip(spawns["peer"].tolist(), spawns["mfa"].tolist()))
    out = dict(names)
    for pid in tree["pid"]:
        if pid in names:
            continue
        up, hops = parents.get(pid), 1
        while up is not None and up not in names and hops < 4:
            up, hops = parents.get(up), hops + 1
        call = runs.get(pid)
        doing = f" running {call}" if call and not call.startswith(_WRAPPERS) else ""
        if up in names:
            out[pid] = f"a {'child' if hops == 1 else 'descendant'} of {names[up]}{doing}"
        else:
            out[pid] = f"a process{doing}" if doing else UNNAMED
    return out


def _flows(facts: Facts) -> pd.DataFrame:
    frame = facts.store.frame()
    sends = frame[frame["kind"] == "send"]
    seqs = sends["seq"].to_numpy(dtype=np.int64)
    raw = facts.store.raw()
    senders, receivers = (sends[c].to_numpy(dtype=object) for c in ("pid", "peer"))
    who = {pid: role_of(facts, pid) for pid in pd.unique(np.concatenate([senders, receivers]))}
    keys = [f"{who[s]} -> {who[r]} {payload_shape(raw.payload(seq))}"
            for s, r, seq in zip(senders, receivers, seqs.tolist())]
    return pd.DataFrame({"seq": seqs, "ts_ns": raw.ts_ns[seqs], "flow": keys})
