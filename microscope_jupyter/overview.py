"""The node at a glance, as observer's first tab shows it: one read of the node.

    >>> snap = read_snapshot(s, window=0.5, top=10)
    >>> snap.schedulers            # id, type, active, total, utilisation
    >>> snap.memory                # category, bytes  (erlang:memory())
    >>> snap.ets; snap.ports; snap.processes; snap.system

One remote evaluation returns everything, bounded: the top ``top``
processes by mailbox, by memory and by reductions in the window, the
``tables`` largest ETS tables and the ``ports`` busiest ports, never the
whole of them. ``SystemOverview`` (widgets/overview.py) shows it.

Every figure is the node's own reading. What is computed from two of them
says so: a scheduler's utilisation (its active time over its total time in
the window) and a process's reductions in the window (two readings of its
counter), and an ETS table's bytes (its words times the word size).

Scheduler times need the ``scheduler_wall_time`` system flag. It is turned
on only if it is off, for the window, and off again after (``try ...
after``): the flag is counted per process on OTP 22+, so turning it off
takes back our own count and never one another process holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .analysis.tops import tidy
from .beam.terms import Atom
from .errors import MicroscopeError
from .render import format_mfa_term, format_name

__all__ = ["Snapshot", "read_snapshot", "shape", "OVERVIEW_SOURCE", "PROCESS_COLUMNS",
           "SCHEDULER_COLUMNS", "ETS_COLUMNS", "PORT_COLUMNS", "COMPUTED"]

UNDEFINED = Atom("undefined")

# The program the node runs (erl_eval, one round trip). Bindings: Window
# (ms), Top, TopTables, TopPorts.
OVERVIEW_SOURCE = """
WasOn = erlang:statistics(scheduler_wall_time) =/= undefined,
WasOn orelse erlang:system_flag(scheduler_wall_time, true),
Reds = fun() -> [{P, R} || P <- erlang:processes(),
                           {reductions, R} <- [erlang:process_info(P, reductions)]] end,
Measured = try
    W0 = erlang:statistics(scheduler_wall_time_all),
    R0 = maps:from_list(Reds()),
    M0 = erlang:monotonic_time(microsecond),
    receive after Window -> ok end,
    {W0, erlang:statistics(scheduler_wall_time_all), R0,
     erlang:monotonic_time(microsecond) - M0}
after
    WasOn orelse erlang:system_flag(scheduler_wall_time, false)
end,
{Wall0, Wall1, Red0, ElapsedUs} = Measured,
FlagAfter = erlang:statistics(scheduler_wall_time) =/= undefined,
Procs = [{P, Q, Mem, R, R - maps:get(P, Red0, 0)} || P <- erlang:processes(), P =/= self(),
         [{message_queue_len, Q}, {memory, Mem}, {reductions, R}]
             <- [erlang:process_info(P, [message_queue_len, memory, reductions])]],
TopBy = fun(K, L, N) -> lists:sublist(lists:reverse(lists:keysort(K, L)), N) end,
Busy = fun(K) -> [X || X <- Procs, element(K, X) > 0] end,
Chosen = lists:usort(TopBy(2, Busy(2), Top) ++ TopBy(3, Procs, Top) ++ TopBy(5, Busy(5), Top)),
Named = fun(P) -> try erlang:process_info(P, registered_name) of
                      {registered_name, N} -> N; _ -> undefined catch _:_ -> undefined end end,
ProcRows = [{P, Q, Mem, R, D, Named(P),
             case erlang:process_info(P, [current_function, status]) of
                 [{current_function, F}, {status, S}] -> {F, S}; _ -> {undefined, exited} end,
             try proc_lib:translate_initial_call(P) catch _:_ -> undefined end}
            || {P, Q, Mem, R, D} <- Chosen],
Tables = ets:all(),
EtsAll = [{proplists:get_value(memory, I, 0), T, I} || T <- Tables, I <- [ets:info(T)], is_list(I)],
EtsRows = [{T, Mem, [{K, proplists:get_value(K, I)} || K <- [name, size, type, protection]],
            proplists:get_value(owner, I), Named(proplists:get_value(owner, I))}
           || {Mem, T, I} <- TopBy(1, EtsAll, TopTables)],
PortInfo = fun(P, K) -> case erlang:port_info(P, K) of {K, V} -> V; _ -> undefined end end,
PortsAll = [{In + Out, P, I} || P <- erlang:ports(), I <- [erlang:port_info(P)], is_list(I),
            In <- [proplists:get_value(input, I, 0)], Out <- [proplists:get_value(output, I, 0)]],
PortRows = [{P, [{K, proplists:get_value(K, I)} || K <- [name, connected, os_pid, input, output]],
             PortInfo(P, memory), PortInfo(P, queue_size), Named(proplists:get_value(connected, I))}
            || {_, P, I} <- TopBy(1, PortsAll, TopPorts)],
Info = fun(K) -> try erlang:system_info(K) catch _:_ -> undefined end end,
System = [{K, Info(K)} || K <- [process_count, process_limit, port_count, port_limit, ets_count,
                                 ets_limit, atom_count, atom_limit, schedulers, schedulers_online,
                                 dirty_cpu_schedulers, dirty_cpu_schedulers_online,
                                 dirty_io_schedulers, wordsize, otp_release, logical_processors]],
{{input, IoIn}, {output, IoOut}} = erlang:statistics(io),
#{scheduler_flag_before => WasOn, scheduler_flag_after => FlagAfter,
  wall_before => Wall0, wall_after => Wall1, elapsed_us => ElapsedUs,
  processes => ProcRows, process_total => length(Procs), memory => erlang:memory(),
  ets => EtsRows, ets_total => length(EtsAll), ports => PortRows, port_total => length(PortsAll),
  system => System ++ [{uptime_ms, element(1, erlang:statistics(wall_clock))},
                       {run_queue, erlang:statistics(total_run_queue_lengths_all)},
                       {io_input_bytes, IoIn}, {io_output_bytes, IoOut}]}.
"""

SCHEDULER_COLUMNS = ["id", "type", "active", "total", "utilisation"]
PROCESS_COLUMNS = ["pid", "name", "initial_call", "current_function", "status",
                   "message_queue_len", "memory", "reductions", "reductions_in_window", "top"]
ETS_COLUMNS = ["table", "name", "owner", "owner_name", "size", "memory_words", "memory_bytes",
               "type", "protection"]
PORT_COLUMNS = ["port", "name", "connected", "connected_name", "os_pid", "input", "output",
                "memory", "queue_size"]
# The columns not read from the node but computed from its readings, and how.
COMPUTED = {
    "utilisation": "active / total scheduler time over the window (two readings of "
                   "erlang:statistics(scheduler_wall_time_all))",
    "reductions_in_window": "the difference of two readings of the process's reductions, "
                            "the window apart",
    "memory_bytes": "ets:info memory (words) times erlang:system_info(wordsize)",
}


@dataclass
class Snapshot:
    """One read of the node. ``schedulers``, ``memory``, ``ets``, ``ports`` and
    ``processes`` (the tops) are DataFrames; ``system`` the node's counters and
    limits; ``totals`` how many processes, tables and ports there were (the
    frames hold the tops only); ``scheduler_flag`` what was done to the flag."""

    node: str
    taken_at: float                   # epoch seconds, when the reply came
    window_s: float                   # the measured window, the node's own clock
    schedulers: pd.DataFrame
    memory: pd.DataFrame
    ets: pd.DataFrame
    ports: pd.DataFrame
    processes: pd.DataFrame
    system: dict[str, Any]
    totals: dict[str, int]
    scheduler_flag: dict[str, bool] = field(default_factory=dict)

    def top(self, by: str, n: int = 10) -> pd.DataFrame:
        """The top ``n`` processes by ``by``: ``mailbox``, ``memory`` or ``reductions``
        (in the window)."""
        column = {"mailbox": "message_queue_len", "memory": "memory",
                  "reductions": "reductions_in_window"}.get(by)
        if column is None:
            raise MicroscopeError(f"expected by='mailbox', 'memory' or 'reductions', got: {by!r}")
        rows = self.processes[self.processes["top"].map(lambda tops: by in tops)]
        return rows.sort_values(column, ascending=False, kind="stable").head(n).reset_index(
            drop=True)


def read_snapshot(session: Any, window: float = 0.5, top: int = 10, tables: int = 30,
                  ports: int = 30) -> Snapshot:
    """One read of ``session``'s node (``eval_erlang``): ``window`` seconds of
    scheduler and reduction measurement, the top ``top`` processes by each
    measure, the ``tables`` largest ETS tables and ``ports`` busiest ports."""
    if not 0.05 <= window <= 10:
        raise MicroscopeError(f"expected a window between 0.05 and 10 seconds, got: {window!r}")
    reply = session.eval_erlang(OVERVIEW_SOURCE, timeout=window + 60, Window=int(window * 1000),
                                Top=int(top), TopTables=int(tables), TopPorts=int(ports))
    return shape(reply, str(session.node), session.syntax, top, taken_at=time.time())


def shape(reply: dict, node: str, syntax: str = "elixir", top: int = 10,
          taken_at: float = 0.0) -> Snapshot:
    """The node's reply (``OVERVIEW_SOURCE``'s map) as a ``Snapshot``."""
    got = {str(k): v for k, v in reply.items()}
    system = {str(k): _plain(v) for k, v in got["system"]}
    return Snapshot(
        node=node, taken_at=taken_at, window_s=got["elapsed_us"] / 1e6,
        schedulers=_schedulers(got["wall_before"], got["wall_after"], system),
        memory=pd.DataFrame([(str(k), int(v)) for k, v in got["memory"]],
                            columns=["category", "bytes"]),
        ets=_ets(got["ets"], system.get("wordsize") or 8, syntax),
        ports=_ports(got["ports"], syntax),
        processes=_processes(got["processes"], syntax, top),
        system=system,
        totals={"processes": int(got["process_total"]), "ets": int(got["ets_total"]),
                "ports": int(got["port_total"])},
        scheduler_flag={"before": got["scheduler_flag_before"] is True,
                        "after": got["scheduler_flag_after"] is True})


def _schedulers(before: Any, after: Any, system: dict) -> pd.DataFrame:
    """Per scheduler thread, its active and total time in the window (the node's
    units) and their ratio. Ids run normal, then dirty CPU, then dirty I/O
    (erlang:statistics/1)."""
    if not isinstance(before, list) or not isinstance(after, list):
        return pd.DataFrame(columns=SCHEDULER_COLUMNS)
    normal = system.get("schedulers") or 0
    dirty_cpu = system.get("dirty_cpu_schedulers") or 0
    start = {i: (a, t) for i, a, t in before}
    rows = []
    for i, a, t in sorted(after):
        if i not in start:
            continue
        active, total = a - start[i][0], t - start[i][1]
        kind = "normal" if i <= normal else "dirty_cpu" if i <= normal + dirty_cpu else "dirty_io"
        rows.append((i, kind, active, total, active / total if total > 0 else None))
    return pd.DataFrame(rows, columns=SCHEDULER_COLUMNS)


def _processes(rows: list, syntax: str, top: int) -> pd.DataFrame:
    out = []
    for pid, queue, memory, reductions, delta, name, (function, status), initial in rows:
        out.append({"pid": str(pid), "name": _name(name, syntax),
                    "initial_call": format_mfa_term(initial, syntax),
                    "current_function": format_mfa_term(function, syntax),
                    "status": str(status), "message_queue_len": int(queue),
                    "memory": int(memory), "reductions": int(reductions),
                    "reductions_in_window": int(delta)})
    frame = tidy(pd.DataFrame(out, columns=PROCESS_COLUMNS[:-1]))
    tops: dict[str, list[str]] = {}
    for by, column in [("mailbox", "message_queue_len"), ("memory", "memory"),
                       ("reductions", "reductions_in_window")]:
        ranked = frame.sort_values([column, "pid"], ascending=[False, True], kind="stable")
        if by != "memory":      # an empty mailbox, an idle process: no top of those
            ranked = ranked[ranked[column] > 0]
        for pid in ranked["pid"].head(top):
            tops.setdefault(pid, []).append(by)
    frame["top"] = [tops.get(p, []) for p in frame["pid"]]
    return frame


def _ets(rows: list, wordsize: int, syntax: str) -> pd.DataFrame:
    out = []
    for table, words, info, owner, owner_name in rows:
        found = {str(k): v for k, v in info}
        name = found.get("name")
        out.append({"table": _term_text(table, syntax),
                    "name": _name(name, syntax) if isinstance(name, Atom) else None,
                    "owner": str(owner) if owner is not None else None,
                    "owner_name": _name(owner_name, syntax),
                    "size": int(found.get("size") or 0), "memory_words": int(words),
                    "memory_bytes": int(words) * int(wordsize),
                    "type": str(found.get("type")), "protection": str(found.get("protection"))})
    return tidy(pd.DataFrame(out, columns=ETS_COLUMNS))


def _ports(rows: list, syntax: str) -> pd.DataFrame:
    out = []
    for port, info, memory, queue, owner_name in rows:
        found = {str(k): v for k, v in info}
        out.append({"port": str(port), "name": _plain(found.get("name")),
                    "connected": str(found["connected"]) if found.get("connected") else None,
                    "connected_name": _name(owner_name, syntax), "os_pid": _number(found.get("os_pid")),
                    "input": _number(found.get("input")), "output": _number(found.get("output")),
                    "memory": _number(memory), "queue_size": _number(queue)})
    return tidy(pd.DataFrame(out, columns=PORT_COLUMNS))


def _name(name: Any, syntax: str) -> str | None:
    return format_name(name, syntax) if isinstance(name, Atom) and name != UNDEFINED else None


def _number(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _term_text(term: Any, syntax: str) -> str:
    """A table's id: its name (a named table) or its reference."""
    return format_name(term, syntax) if isinstance(term, Atom) else str(term)


def _plain(value: Any) -> Any:
    """A charlist as text, ``undefined`` as None, numbers and atoms as they are."""
    if isinstance(value, list) and all(isinstance(c, int) for c in value):
        return "".join(chr(c) for c in value)
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    if isinstance(value, Atom):
        return None if value == UNDEFINED else str(value)
    return value
