"""Where in the source an event happened, and what in a module ran.

    site_of_event(facts, seq)   # Site(module, function, arity, line, what)
    executed(facts, module)     # {"handle_info/2": (calls, total µs)}

A crash points at the top frame of its stacktrace (file and line from the
BEAM); a traced call at its function; a GenServer transition at its
callback in the process's module (from how the process was started); any
other event at its process's module. Modules are named as Elixir shows them
("Demo.WorkerB") or as Erlang atoms (":lists").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..beam.terms import Atom
from ..render.names import format_module
from ..store.otp import crash_site
from .facts import Facts

__all__ = ["Site", "site_of_event", "site_of_finding", "executed", "line_snapshots"]

CALLBACK_ARITY = {"init": 1, "handle_call": 3, "handle_cast": 2, "handle_info": 2,
                  "handle_continue": 2, "terminate": 2, "code_change": 3, "handle_event": 4}


@dataclass
class Site:
    module: str | None
    function: str | None = None
    arity: int | None = None
    line: int | None = None
    what: str = ""

    @property
    def key(self) -> str | None:
        return f"{self.function}/{self.arity}" if self.function and self.arity is not None else None


def site_of_event(facts: Facts, seq: int, modules: dict[str, str] | None = None) -> Site:
    events = facts.store.frame()
    if not 0 <= seq < len(events):
        return Site(None, what=f"no event {seq}")
    row = events.iloc[seq]
    kind, term = str(row["kind"]), row["term"]
    if kind == "exit":
        crash = crash_site(term)
        if crash is not None:
            _error, (module, function, arity, location), _kind = crash
            line = _location_line(location)
            return Site(format_module(str(module)), str(function),
                        arity if isinstance(arity, int) else len(arity), line,
                        f"crashed in {function}/{arity if isinstance(arity, int) else len(arity)}"
                        + (f" at line {line}" if line else ""))
    mfa = row["mfa"]
    if isinstance(mfa, str) and "/" in mfa:
        module, function, arity = _split_mfa(mfa)
        if kind == "line":   # inspect_line: aux is the line it was called at
            line = int(facts.store.raw().aux[seq])
            return Site(module, function, arity, line, f"inspect_line at line {line}")
        return Site(module, function, arity, None, f"{kind} of {mfa}")
    module = (modules if modules is not None else _modules(facts)).get(row["pid"])
    if kind == "state":
        callback = _callback_name(facts, seq)
        if callback:
            return Site(module, callback, CALLBACK_ARITY.get(callback), None, f"the {callback} callback")
    return Site(module, what=f"{kind} in {module or 'an unknown module'}")


def site_of_finding(facts: Facts, finding: Any) -> Site:
    """A finding's site: its first evidence that names a place (a crash, a call,
    a callback), else its first event."""
    evidence = list(finding["evidence"]) if "evidence" in finding else []
    modules = _modules(facts)
    for seq in evidence or [int(finding["first_seq"])]:
        site = site_of_event(facts, int(seq), modules)
        if site.function:
            return site
    return site_of_event(facts, int(evidence[0] if evidence else finding["first_seq"]), modules)


def executed(facts: Facts, module: str) -> dict[str, tuple[int, float]]:
    """Per "function/arity" of ``module``: how many times it ran in the recording
    and for how long in total (µs), from traced calls and GenServer callbacks."""
    out: dict[str, list[float]] = {}
    calls = facts.calls()
    if len(calls):
        for mfa, duration in zip(calls["mfa"], calls["duration_us"]):
            if isinstance(mfa, str) and "/" in mfa:
                mod, fun, arity = _split_mfa(mfa)
                if mod == module:
                    _add(out, f"{fun}/{arity}", duration)
    states = facts.states()
    if len(states):
        modules = _modules(facts)
        for pid, callback, duration in zip(states["pid"], states["callback"], states["duration_us"]):
            if modules.get(pid) == module and str(callback) in CALLBACK_ARITY:
                _add(out, f"{callback}/{CALLBACK_ARITY[str(callback)]}", duration)
    return {k: (int(v[0]), float(v[1])) for k, v in out.items()}


def line_snapshots(facts: Facts, module: str) -> dict[str, str]:
    """Per source line of ``module`` that called ``inspect_line``: how many times,
    and the newest binding as text (``"3× · n = 7, state = %{count: 2}"``)."""
    lines = facts.lines()
    out: dict[str, list] = {}
    for mfa, line, text in zip(lines["mfa"], lines["line"], lines["text"]):
        if isinstance(mfa, str) and "/" in mfa and _split_mfa(mfa)[0] == module:
            entry = out.setdefault(str(int(line)), [0, ""])
            entry[0] += 1
            entry[1] = text if isinstance(text, str) else ""
    return {line: f"{n}× · {text}" for line, (n, text) in out.items()}


def _add(out: dict[str, list[float]], key: str, duration: Any) -> None:
    entry = out.setdefault(key, [0, 0.0])
    entry[0] += 1
    entry[1] += 0.0 if duration is None or pd.isna(duration) else float(duration)


def _split_mfa(mfa: str) -> tuple[str, str, int]:
    """"Demo.WorkerB.handle_info/2" or ":lists.map/2" -> (module, function, arity)."""
    head, arity = mfa.rsplit("/", 1)
    module, function = head.rsplit(".", 1)
    return module, function, int(arity)


def _modules(facts: Facts) -> dict[str, str]:
    """The module each process runs (the one whose init it was started with):
    from the tree at the start, else how the recording saw it spawned. One
    pass for every process (the recorded tree is a pass over the events)."""
    tree = facts.recorded_tree()
    events = facts.events
    spawned = events[events["kind"] == "spawn"]
    initial = dict(zip(spawned["peer"], spawned["mfa"]))
    initial.update((p, c) for p, c in zip(tree["pid"], tree["initial_call"])
                   if isinstance(c, str) and "/" in c)
    return {p: _split_mfa(c)[0] for p, c in initial.items()
            if isinstance(p, str) and isinstance(c, str) and "/" in c}


def _callback_name(facts: Facts, seq: int) -> str | None:
    states = facts.states()
    match = states[states["seq"] == seq]
    return str(match["callback"].iloc[0]) if len(match) else None


def _location_line(location: Any) -> int | None:
    if isinstance(location, list):
        for item in location:
            if isinstance(item, tuple) and len(item) == 2 and item[0] == Atom("line"):
                return int(item[1])
    return None
