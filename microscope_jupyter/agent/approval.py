"""What a person approves before a trace runs that they did not write: the
request (processes, call-traced functions with their match specs, flags,
limits, duration, and why), and the ceilings they set ahead of time.

    request = TraceRequest(["MyApp.Worker"], ["ets:lookup/2"], limits_dict, "why")
    request.describe()          # one line per thing that will run
    Ceilings(max_events=200_000).refuse(request)   # why it is above them, or None

Shared by the MCP assistant (``assistant/engine.py``) and investigations
(``investigation.py``): one description, one set of ceilings.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass
from typing import Any

from ..render.names import format_module
from .options import ASSISTANT_CEILINGS, TraceLimits
from .spec import TraceSpec

__all__ = ["Ceilings", "TraceRequest", "CALL_MATCH_SPEC", "MONITOR_MATCH_SPEC", "now"]


def now() -> str:
    """When a person decided (or an audit record was made): UTC, to the millisecond."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


class Ceilings(TraceLimits):
    """The most a trace the assistant starts without asking may take; set by the
    human. What is not given is ``ASSISTANT_CEILINGS`` (agent/options.py), the one
    place the assistant's limits are tighter than a notebook's."""

    def __init__(self, **limits: Any):
        super().__init__(**dataclasses.asdict(ASSISTANT_CEILINGS.replace(**limits)))

    def refuse(self, request: "TraceRequest") -> str | None:
        """Why ``request`` exceeds these ceilings, or None."""
        above = request.limits().above(self)
        if above is None:
            return None
        name, value, most = above
        return (f"{name}={value} is above the ceiling of {most} the human set; "
                f"propose {name}<={most}")


# The match spec the agent sets on each modules= function (CALL_SPEC in the agent),
# and on the monitor BIFs (monitor_match_spec/1), as a person reads them.
CALL_MATCH_SPEC = "[{'_', [], [{return_trace}, {exception_trace}]}]"
MONITOR_MATCH_SPEC = "[{[process, '_'], [], [{return_trace}]}]"


@dataclass
class TraceRequest:
    processes: list[str]
    modules: list[str]
    asked: dict[str, Any]     # TraceLimits' fields as the assistant gave them, defaults filled
    reason: str

    def limits(self) -> TraceLimits:
        """What the trace may take, checked (TraceLimitError if it cannot work)."""
        return TraceLimits(**self.asked)

    def spec(self) -> TraceSpec:
        """What would run, checked as ``s.trace`` checks it (TraceSpecError if not)."""
        return TraceSpec.build(self.processes, self.modules, **self.limits().trace_options())

    def arguments(self) -> dict[str, Any]:
        """As the audit records the call."""
        return {"reason": self.reason, "processes": self.processes, "modules": self.modules,
                **self.asked}

    def describe(self) -> list[str]:
        """Everything the trace will run, one line each: what the human approves."""
        spec = self.spec()
        lines = [f"processes: {', '.join(self.processes)}, each supervisor with its whole "
                 "subtree, children followed as they spawn" if self.processes else
                 "processes: every application process (kernel and stdlib internals left "
                 "out), new ones followed as they spawn"]
        for module, fun, arity in spec.modules:
            lines.append(f"calls of {_mfa(module, fun, arity)} in those processes: match spec "
                         f"{CALL_MATCH_SPEC}, so every call with its arguments, and its result "
                         "or exception")
        lines.append(f"trace flags: {', '.join(spec.trace_flags())}")
        lines.append(f"also: calls of erlang:monitor/2 (match spec {MONITOR_MATCH_SPEC}) and "
                     "erlang:demonitor/1 to see monitors, and each watcher's monitors read while "
                     "any are open (a demonitor/2), unless another tool call-traces; "
                     "GenServer state before and after each callback (a sys hook on each)")
        limits = self.limits()
        lines.append(f"limits: at most {limits.max_events:,} events, {limits.max_rate:,} events/s "
                     f"(more are dropped and counted), {limits.payload_limit:,} bytes a payload")
        lines.append("duration: none, it runs until stop_trace" if limits.duration_s is None
                     else f"duration: {limits.duration_s:g} s, then it stops by itself")
        lines.append(f"reason: {self.reason}")
        return lines

    def summary(self) -> str:
        calls = f", calls of {', '.join(self.modules)}" if self.modules else ""
        limits = self.limits()
        return (f"tracing {', '.join(self.processes) or 'every process'}{calls} for "
                f"{_seconds(limits)} (at most {limits.max_events} events)")


def _seconds(limits: TraceLimits) -> str:
    # none only where the human's own ceilings set none
    return "until stopped" if limits.duration_s is None else f"{limits.duration_s:g} s"


def _mfa(module: str, fun: Any, arity: Any) -> str:
    any_fun, any_arity = str(fun) == "_", str(arity) == "_"
    name = format_module(module)
    if any_fun:
        return f"every function of {name}"
    return f"{name}.{fun}" + ("" if any_arity else f"/{arity}") + (" (every arity)"
                                                                   if any_arity else "")
