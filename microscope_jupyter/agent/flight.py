"""Flight recorders: traces that keep running on the node with no notebook attached.

    fr = s.flight_recorder("MyApp.Sup", max_bytes="16MB", max_age="60s", until="24h")
    ...                                   # detach, go home; the app crashes at night
    s2 = mic.attach("app@host")
    s2.flight_recorders()                 # every recorder on the node, any session's
    rec = s2.pull_flight_recorder()       # a normal Recording: query, time travel, explain
    rec.flight["frozen"]                  # the copies the triggers froze, with why

On the node a recorder is the usual trace (controller, tracer, sampler)
whose batches go to a ring process instead of Python: it keeps the newest
within ``max_bytes`` and ``max_age``, freezes a copy a moment after a
trigger fires, and removes everything (the trace's flags, patterns and
hooks, then itself) at ``until`` or when any session removes it.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pandas as pd

from ..beam.node import LocalNode, RemoteNode
from ..beam.terms import Atom, Pid
from ..errors import BadRpc, TraceError, TraceLimitError, TraceSpecError
from ..render.names import erlang_module_name, format_name
from ..store.event_store import EventStore
from .beam_file import AGENT_MODULE
from .beam_file import ensure_agent
from .controller import Recording
from .spec import TraceSpec, parse_duration, spec_error

__all__ = ["FlightRecorder", "start_flight_recorder", "flight_recorders", "find_recorder", "remove_recorder",
           "pull_flight_recorder", "parse_bytes", "parse_triggers", "with_recorder_options",
           "GRANULARITY"]

# What a recorder keeps: the tracer's levels (microscope_agent GRANULARITY),
# fixed, or "adaptive" (from full, stepping down as the tracer falls behind).
# "counters" sets no message or state tracing at all: lifecycle events and
# sampled mailboxes, memory and reductions only, for next to no cost.
GRANULARITY = {"full": 0, "capped": 1, "sampled": 2, "counters": 3, "adaptive": 0}
MONITOR_TRIGGERS = ("long_gc", "long_schedule", "large_heap")
# Where a recorder's trace options differ from a notebook trace's (OPTIONS), on
# purpose: the tracer's backlog is memory beyond max_bytes, so a recorder sheds
# sooner; "counters" wakes rarely (on a small host an agent process waking
# takes a scheduler from the app's) and traces nothing.
RECORDER_SHED_QUEUE = 10_000
COUNTERS_OPTIONS = {"mailbox_ms": 1000, "flush_ms": 1000}
COUNTERS_OFF = {"messages": False, "state": False}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_MAILBOX = re.compile(r"mailbox\s*>=?\s*(\d+)")


def parse_bytes(value: Any) -> int:
    """Bytes from 16_000_000, "16MB", "512KiB"."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.fullmatch(str(value))
        if not match:
            raise TraceLimitError(f"cannot read size {value!r}; write 16_000_000, '16MB' or '512KiB'")
        size = int(float(match[1]) * _UNITS[(match[2] or "b").lower()])
    if size < 64_000:
        raise TraceLimitError(f"max_bytes={value!r} is too small to hold a batch; use at least 64KB")
    return size


def parse_triggers(triggers: Iterable[str] | str) -> dict:
    """``["crash", "crash:MyApp.Worker", "mailbox>1000", "long_gc"]`` -> the agent's map.

    ``crash``: any recorded process exits abnormally; ``crash:Name``: that
    registered process does (followed across restarts); ``mailbox>N``: a
    recorded process's queue reaches N; ``long_gc``, ``long_schedule``,
    ``large_heap``: the system monitor reports one (when it is ours).
    """
    if isinstance(triggers, str):
        triggers = [triggers]
    crash: Any = None
    names: list[bytes] = []
    result: dict = {}
    for trigger in triggers:
        text = str(trigger).strip()
        if text == "crash":
            crash = Atom("any")
        elif text.startswith("crash:") and text[6:].strip():
            names.append(erlang_module_name(text[6:].strip()).encode())
        elif _MAILBOX.fullmatch(text):
            result[Atom("mailbox")] = max(1, int(_MAILBOX.fullmatch(text)[1]))
        elif text in MONITOR_TRIGGERS:
            result.setdefault(Atom("monitor"), []).append(Atom(text))
        else:
            raise TraceSpecError(f"unknown trigger {text!r}; use 'crash', 'crash:MyApp.Worker', "
                                 f"'mailbox>1000' or one of {', '.join(MONITOR_TRIGGERS)}")
    if crash is not None or names:
        result[Atom("crash")] = crash if crash is not None else names
    return result


@dataclass
class FlightRecorder:
    """A flight recorder on a node. ``status()`` reads it there; ``remove()`` ends it."""

    node: str
    id: Pid
    spec: TraceSpec
    _remote: RemoteNode

    def __repr__(self) -> str:
        return f"<FlightRecorder {self.id} on {self.node}>"

    def status(self) -> dict[str, Any]:
        for row in _statuses(self._remote):
            if row["id"] == self.id:
                return row
        raise TraceError(f"flight recorder {self.id} is no longer on {self.node} (expired or "
                         "removed)")

    def remove(self) -> None:
        """Stop it and remove everything it set on the node; what it held is gone."""
        remove_recorder(self._remote, self.id)


def start_flight_recorder(remote: RemoteNode, procs: Iterable[Any] = (), *,
                          max_bytes: Any = "16MB", max_age: Any = "60s", until: Any = "24h",
                          triggers: Iterable[str] | str = ("crash",), granularity: str = "adaptive",
                          max_frozen: int = 4, freeze_after: Any = "250ms",
                          **options: Any) -> FlightRecorder:
    """Keep recording on the node after this session goes: the newest events
    within ``max_bytes`` and ``max_age``, until ``until``, when it removes
    everything it set. ``triggers`` (``"crash"``, ``"crash:MyApp.Worker"``,
    ``"mailbox>1000"``, ``"long_gc"``...) freeze a copy of the ring (the lead-up
    and ``freeze_after`` more; at most ``max_frozen``) as they fire.
    ``granularity``: ``"adaptive"``, ``"full"``, ``"capped"``, ``"sampled"`` or
    ``"counters"`` (lifecycle and samples only: next to no cost). Other options
    as ``trace()``. Pull it with ``pull_flight_recorder()``."""
    if granularity not in GRANULARITY:
        raise TraceSpecError(f"unknown granularity {granularity!r}; use one of "
                             f"{', '.join(GRANULARITY)}")
    if granularity == "counters":
        options = {**COUNTERS_OPTIONS, **options, **COUNTERS_OFF}
    if granularity != "adaptive":
        options.setdefault("adaptive", False)
    triggers_map = parse_triggers(triggers)
    options.setdefault("shed_queue", RECORDER_SHED_QUEUE)
    spec = TraceSpec.build(procs, **options)
    opts = spec.to_agent_opts()
    opts.update({
        # counters: no trace flag at all (any costs a traced process's message
        # passing); the processes are monitored and sampled
        Atom("watch_only"): granularity == "counters",
        Atom("monitors"): granularity != "counters",
        Atom("long_schedule"): (granularity != "counters"
                                or Atom("long_schedule") in triggers_map.get(Atom("monitor"), [])),
        Atom("max_bytes"): parse_bytes(max_bytes),
        Atom("max_age_ms"): _ms(max_age, "max_age"),
        Atom("until_ms"): _ms(until, "until"),
        Atom("post_ms"): _ms(freeze_after, "freeze_after"),
        Atom("max_frozen"): _positive(max_frozen, "max_frozen"),
        Atom("triggers"): triggers_map,
        Atom("level"): GRANULARITY[granularity],
    })
    ensure_agent(remote)
    reply = remote.rpc(AGENT_MODULE, "flight_start", [opts], 90)
    if not (isinstance(reply, tuple) and reply[0] == Atom("ok")):
        reason = reply[1] if isinstance(reply, tuple) and len(reply) == 2 else reply
        raise spec_error(reason, remote.name)
    return FlightRecorder(remote.name, reply[1], spec, remote)


def with_recorder_options(method: Callable) -> Callable:
    """Give ``Session.flight_recorder`` (which takes ``**options``) the keywords,
    defaults and docs of ``start_flight_recorder``, so they are written once."""
    own = inspect.signature(method)
    keywords = [p for p in inspect.signature(start_flight_recorder).parameters.values()
                if p.kind == p.KEYWORD_ONLY]
    params = list(own.parameters.values())
    method.__signature__ = own.replace(parameters=params[:-1] + keywords + params[-1:])
    method.__doc__ = start_flight_recorder.__doc__
    return method


def flight_recorders(remote: RemoteNode) -> pd.DataFrame:
    """One row per recorder on the node: what it keeps, holds and has frozen."""
    rows = _statuses(remote)
    columns = ["id", "node", "state", "started", "expires", "procs", "traced", "granularity",
               "max_bytes", "held_bytes", "memory", "events", "evicted", "dropped", "frozen",
               "ignored_triggers"]
    frame = pd.DataFrame([{c: row.get(c) for c in columns} for row in rows], columns=columns)
    for column in ("started", "expires"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame


def find_recorder(remote: RemoteNode, which: Any = None) -> Pid:
    """The recorder ``which`` names (a FlightRecorder, a pid or its text), or the only one."""
    if isinstance(which, FlightRecorder):
        return which.id
    ids = [row["id"] for row in _statuses(remote)]
    if which is None:
        if len(ids) == 1:
            return ids[0]
        raise TraceError(f"{len(ids)} flight recorders on {remote.name}; "
                         + ("start one with s.flight_recorder()" if not ids
                            else "name one: s.pull_flight_recorder(s.flight_recorders().id[0])"))
    for pid in ids:
        if pid == which or str(pid) == str(which):
            return pid
    raise TraceError(f"no flight recorder {which} on {remote.name}; list them with "
                     "s.flight_recorders()")


def remove_recorder(remote: RemoteNode, which: Any) -> None:
    reply = remote.rpc(AGENT_MODULE, "flight_remove", [find_recorder(remote, which)], 40)
    if reply != Atom("ok"):
        raise TraceError(f"could not remove flight recorder {which} on {remote.name}: {reply!r}")


def pull_flight_recorder(remote: RemoteNode, local: LocalNode, store: EventStore, which: Any,
                         source: str) -> Recording:
    """Everything the recorder holds, as a finished Recording in ``store``; the
    recorder keeps running. ``rec.flight`` says what the ring had lost and froze."""
    recorder = find_recorder(remote, which)
    owner = local.mailbox()
    owner.watch(remote)
    try:
        reply = remote.rpc(AGENT_MODULE, "flight_pull", [recorder, owner.pid], 150)
        if not (isinstance(reply, tuple) and reply[0] == Atom("ok")):
            raise TraceError(f"could not pull flight recorder {recorder} on {remote.name}: "
                             f"{reply!r}; list them with s.flight_recorders()")
    except BaseException:
        owner.close()
        raise
    summary = _plain(reply[1])
    info = _plain(summary["info"])
    info.update(backend=str(info["backend"]), monitors=str(info.get("monitors", "off")))
    store.add_source(source, remote.name, info["time_offset"], info["native_per_second"],
                     details_follow=bool(summary["details"]))
    status = _status_row(summary["status"])
    spec = TraceSpec.build(status["procs"] or ())
    stats = {"sent": summary["batches"], "seen": summary["seen"], "dropped": summary["dropped"],
             "kept": summary["seen"] - summary["dropped"]}
    recording = Recording.pulled(remote, owner, recorder, info, store, source, spec, stats)
    wall = _wall(info)
    recording.flight = {
        "recorder": status,
        "frozen": pd.DataFrame(
            [{"why": "; ".join(_why_text(w) for w in _plain(c)["why"]), "at": wall(c[Atom("at")]),
              "from": wall(c[Atom("from")]), "to": wall(c[Atom("to")]),
              "events": c[Atom("events")]} for c in summary["frozen"]],
            columns=["why", "at", "from", "to", "events"]),
        "gaps": pd.DataFrame(
            [{"from": wall(g[Atom("from")]), "to": wall(g[Atom("to")]),
              "batches": g[Atom("batches")]} for g in summary["gaps"]],
            columns=["from", "to", "batches"]),
    }
    return recording


def _statuses(remote: RemoteNode) -> list[dict[str, Any]]:
    try:
        rows = remote.rpc(AGENT_MODULE, "flight_list", [], 30)
    except BadRpc:
        return []     # no agent loaded (or an old one): no recorder either
    return [_status_row(row) for row in rows] if isinstance(rows, list) else []


def _status_row(term: Any) -> dict[str, Any]:
    row = _plain(term)
    procs = row.get("procs")
    row["procs"] = None if procs == Atom("all") or procs is None else [
        p if isinstance(p, Pid) else _text(p) for p in procs]
    row["state"], row["node"] = str(row.get("state")), str(row.get("node"))
    row["started"], row["expires"] = row.pop("started_ms", None), row.pop("expires_ms", None)
    row["granularity"] = {v: k for k, v in GRANULARITY.items() if k != "adaptive"}.get(
        row.get("granularity"), row.get("granularity"))
    return row


def _why_text(why: Any) -> str:
    if isinstance(why, tuple) and why:
        kind = str(why[0])
        if kind == "crash":
            who = why[1] if isinstance(why[1], Pid) else format_name(why[1], "elixir")
            return f"crash of {who}"
        if kind == "mailbox":
            return f"mailbox of {why[1]} reached {why[2]}"
        return f"{kind} in {why[1]}"
    return str(why)


def _wall(info: dict) -> Any:
    offset, per_second = info["time_offset"], info["native_per_second"]

    def wall(native: Any) -> Any:
        if not isinstance(native, int):
            return pd.NaT
        return pd.Timestamp((native + offset) * 1_000_000_000 // per_second, unit="ns", tz="UTC")
    return wall


def _plain(term: Any) -> dict[str, Any]:
    return {str(k): v for k, v in term.items()} if isinstance(term, dict) else {}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(value: Any, name: str) -> int:
    seconds = parse_duration(value)
    if seconds is None:
        raise TraceLimitError(f"{name} needs a duration, such as '60s' or '24h'")
    ms = max(1, int(seconds * 1000))
    if ms > 4_294_967_295:
        raise TraceLimitError(f"{name}={value!r} is longer than a node timer can wait (49 days)")
    return ms


def _positive(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TraceLimitError(f"{name}={value!r} cannot work; use a positive integer")
    return value
