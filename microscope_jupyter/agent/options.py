"""Every trace option, declared once.

    OPTIONS["max_rate"].default     # 200_000
    defaults()                      # {"messages": True, ..., "mailbox_ms": 100}

``TraceSpec`` validates against these, sends them to the agent under the
same names, and ``Session.trace`` takes its signature and docstring from
them. The agent keeps its own defaults (it also runs without Python); a unit
test reads ``defaults()`` and the limit checks out of the agent's source and
fails on any difference, so the two sides cannot drift apart silently.

Options with their own parsing live in ``TraceSpec`` itself: ``procs``,
``modules``, ``duration`` (sent as ``duration_ms``) and ``system_monitor``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import TraceLimitError

__all__ = ["TraceOption", "OPTIONS", "SPECIAL", "THRESHOLDS", "defaults", "check",
           "with_trace_options"]


@dataclass(frozen=True)
class TraceOption:
    name: str            # the keyword in Python and the key in the agent's options
    default: Any
    doc: str
    kind: type           # bool, or int (then a positive integer)
    public: bool = True  # a keyword of Session.trace (the rest are for benchmarks and tests)
    ceiling: int | None = None   # the most an int may be, and why (the agent holds it too)
    ceiling_why: str = ""


OPTIONS: dict[str, TraceOption] = {o.name: o for o in [
    TraceOption("messages", True, "record every send and receive", bool),
    TraceOption("lifecycle", True, "spawn, exit, link, register and monitor events, and the "
                "links and monitors held at the start", bool),
    TraceOption("state", True, "GenServer / gen_statem state before and after every callback "
                "(sys hooks, requested without waiting)", bool),
    TraceOption("gc", False, "garbage collection events", bool),
    TraceOption("max_events", 1_000_000, "events kept before the trace stops", int),
    TraceOption("max_rate", 200_000, "events per second beyond which events are dropped and "
                "counted", int),
    TraceOption("payload_limit", 4096, "bytes per message or argument (and words of state a hook "
                "may copy) before it is summarised", int, ceiling=65_536,
                ceiling_why="a larger payload is copied out of the traced process on every event "
                "and a state of eight times that on every callback; trace fewer processes, or "
                "read one state with s.process(proc)"),
    TraceOption("mailbox_ms", 100, "how often every traced process's real message_queue_len "
                "is sampled", int),
    TraceOption("sample", 1, "keep 1 in N messages (sends and receives; the rest are counted as "
                "dropped): for high-volume traffic", int),
    TraceOption("adaptive", True, "as the tracer falls behind, cap payloads, then keep 1 message "
                "in 8, then none (counted), and come back up as it catches up; each step is a "
                "'granularity' event", bool),
    TraceOption("lines", True, "BeamMicroscope.inspect_line snapshots (the Elixir hooks package "
                "in elixir_hooks/): local variables at chosen lines, as 'line' events", bool),
    TraceOption("batch_events", 2000, "events per batch sent to Python", int, public=False),
    TraceOption("flush_ms", 50, "longest wait before a partial batch is sent", int, public=False),
    TraceOption("shed_queue", 50_000, "tracer mailbox length where shedding starts", int,
                public=False),
    TraceOption("max_queue", 500_000, "tracer mailbox length where the trace stops to protect "
                "the node", int, public=False),
    TraceOption("long_gc_ms", 50, "system monitor: a garbage collection this long", int,
                public=False),
    TraceOption("long_schedule_ms", 50, "system monitor: running this long without yielding",
                int, public=False),
    TraceOption("large_heap_words", 1_000_000, "system monitor: a heap this large", int,
                public=False),
]}

# Agent options that TraceSpec parses itself (Python keyword -> agent key).
SPECIAL = {"procs": "procs", "modules": "modules", "duration": "duration_ms",
           "system_monitor": "system_monitor", "exclude": "exclude"}
THRESHOLDS = ("long_gc_ms", "long_schedule_ms", "large_heap_words")


def defaults() -> dict[str, Any]:
    return {name: option.default for name, option in OPTIONS.items()}


def check(name: str, value: Any) -> Any:
    """``value`` if it can work for option ``name``; else TraceLimitError, one line."""
    option = OPTIONS.get(name)
    if option is None:
        import difflib

        close = difflib.get_close_matches(name, list(OPTIONS) + list(SPECIAL), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise TraceLimitError(f"unknown trace option {name!r}{hint} Options: "
                              f"{', '.join(sorted(o for o in OPTIONS if OPTIONS[o].public))}")
    if option.kind is bool:
        if not isinstance(value, bool):
            raise TraceLimitError(f"{name}={value!r} cannot work; it must be True or False")
    elif isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TraceLimitError(f"{name}={value!r} cannot work; it must be a positive integer")
    elif option.ceiling is not None and value > option.ceiling:
        raise TraceLimitError(f"{name}={value:,} is above its ceiling of {option.ceiling:,}: "
                              f"{option.ceiling_why}")
    return value


def with_trace_options(func: Callable) -> Callable:
    """Give ``Session.trace`` (which takes ``**options``) a signature and docs that
    list every public option with its default, as IPython's ``?`` shows them."""
    signature = inspect.signature(func)
    params = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
    params += [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default,
                                 annotation=o.kind.__name__)
               for o in OPTIONS.values() if o.public]
    func.__signature__ = signature.replace(parameters=params)
    lines = [f"        ``{o.name}`` ({o.default!r}): {o.doc}." for o in OPTIONS.values()
             if o.public]
    func.__doc__ = (func.__doc__ or "").replace("{options}", "\n".join(lines).strip())
    return func
