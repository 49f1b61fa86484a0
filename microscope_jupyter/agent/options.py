"""Every trace option, declared once.

    OPTIONS["max_rate"].default     # 200_000
    defaults()                      # {"messages": True, ..., "mailbox_ms": 100}
    TraceLimits()                   # TraceLimits(max_events=1,000,000, max_rate=200,000,
                                    #             payload_limit=4,096, duration_s=None)
    TraceLimits(duration_s=30).tighter(ASSISTANT_CEILINGS)

``TraceSpec`` validates against these, sends them to the agent under the
same names, and ``Session.trace`` takes its signature and docstring from
them. The agent keeps its own defaults (it also runs without Python); a unit
test reads ``defaults()`` and the limit checks out of the agent's source and
fails on any difference, so the two sides cannot drift apart silently.

Every other surface is generated from this table too, so each option has one
default and one spelling per surface: ``TRACE_FLAGS`` are the ``%trace``
flags (``--max-rate N``, ``--no-state``, ``--for 5s``); ``TraceLimits`` is how
much one trace may take (the options with a ``ceiling_flag``, and the
duration), the value the MCP tools propose and their ceilings compare
against; ``ASSISTANT_CEILINGS`` is the one deliberately tighter value, what
an assistant may start with no one watching, and the defaults of
``microscope mcp``'s ``--max-events``, ``--max-rate``, ``--max-payload`` and
``--max-duration``. ``tests/unit/test_trace_limits.py`` fails if any module
spells a default or a flag this table does not generate.

Options with their own parsing live in ``TraceSpec`` itself: ``procs``,
``modules``, ``duration`` (sent as ``duration_ms``) and ``system_monitor``.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import TraceLimitError

__all__ = ["TraceOption", "OPTIONS", "SPECIAL", "THRESHOLDS", "DURATION", "LIMITS",
           "TRACE_FLAGS", "TraceLimits", "ASSISTANT_CEILINGS", "defaults", "check",
           "parse_duration", "with_trace_options"]


@dataclass(frozen=True)
class TraceOption:
    name: str            # the keyword in Python and the key in the agent's options
    default: Any
    doc: str
    kind: type           # bool, or int (then a positive integer)
    public: bool = True  # a keyword of Session.trace (the rest are for benchmarks and tests)
    ceiling: int | None = None   # the most an int may be, and why (the agent holds it too)
    ceiling_why: str = ""
    # `microscope mcp`'s flag for the most an assistant's trace may take of it: an
    # option with one is a field of TraceLimits
    ceiling_flag: str = ""
    # the %trace flag; left out, --max-rate N for an int, --no-state for a bool that
    # is on by default, --gc for one that is off
    flag: str = ""
    keyword: str = ""    # the keyword of Session.trace, when it is not the name

    def __post_init__(self) -> None:
        dashed = self.name.replace("_", "-")
        generated = (f"--{dashed}" if self.kind is not bool else
                     f"--no-{dashed}" if self.default else f"--{dashed}")
        object.__setattr__(self, "flag", self.flag or generated)
        object.__setattr__(self, "keyword", self.keyword or self.name)


OPTIONS: dict[str, TraceOption] = {o.name: o for o in [
    TraceOption("messages", True, "record every send and receive", bool),
    TraceOption("lifecycle", True, "spawn, exit, link, register and monitor events, and the "
                "links and monitors held at the start", bool),
    TraceOption("state", True, "GenServer / gen_statem state before and after every callback "
                "(sys hooks, requested without waiting)", bool),
    TraceOption("gc", False, "garbage collection events", bool),
    TraceOption("max_events", 1_000_000, "events kept before the trace stops", int,
                ceiling_flag="--max-events"),
    TraceOption("max_rate", 200_000, "events per second beyond which events are dropped and "
                "counted", int, ceiling_flag="--max-rate"),
    TraceOption("payload_limit", 4096, "bytes per message or argument (and words of state a hook "
                "may copy) before it is summarised", int, ceiling=65_536,
                ceiling_why="a larger payload is copied out of the traced process on every event "
                "and a state of eight times that on every callback; trace fewer processes, or "
                "read one state with s.process(proc)", ceiling_flag="--max-payload"),
    TraceOption("mailbox_ms", 100, "how often every traced process's real message_queue_len "
                "is sampled", int),
    TraceOption("sample", 1, "keep 1 in N messages (sends and receives; the rest are counted as "
                "dropped): for high-volume traffic", int),
    TraceOption("adaptive", True, "as the tracer falls behind, cap payloads, then keep 1 message "
                "in 8, then none (counted), and come back up as it catches up; each step is a "
                "'granularity' event", bool),
    TraceOption("lines", True, "BeamMicroscope.inspect_line snapshots (the Elixir hooks package "
                "in elixir_hooks/): local variables at chosen lines, as 'line' events", bool),
    TraceOption("logs", True, "the node's own log (Logger and logger calls, crash and supervisor "
                "reports) as 'log' events, through a logger handler the trace removes at its end; "
                "bounded like messages", bool),
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

# The duration is parsed by TraceSpec (it takes "5s" as well as 5) and sent as
# duration_ms; as a limit it is a number of seconds, duration_s, as the MCP tools,
# saved sessions and ``spec.duration_s`` spell it.
DURATION = TraceOption("duration_s", None, "how long until the trace stops by itself: 5, "
                       "'5s', '500ms', '2m' (default: until it is stopped)", float,
                       flag="--for", keyword="duration", ceiling_flag="--max-duration")

# How much one trace may take of the node: the fields of TraceLimits.
LIMITS: dict[str, TraceOption] = {o.name: o for o in [
    *(o for o in OPTIONS.values() if o.ceiling_flag), DURATION]}

# The %trace flags: every public option (and --for), by flag.
TRACE_FLAGS: dict[str, TraceOption] = {o.flag: o for o in [
    DURATION, *(o for o in OPTIONS.values() if o.public)]}


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


def parse_duration(value: Any) -> float | None:
    """Seconds from 5, 5.0, "5s", "500ms", "2m", "24h"; None for no duration."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*", str(value))
        if not match:
            raise TraceLimitError(f"cannot read duration {value!r}; write 5, '5s', '500ms' or '2m'")
        number, unit = float(match[1]), match[2] or "s"
        seconds = number * {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600}[unit]
    if seconds <= 0:
        raise TraceLimitError(f"duration must be positive, got {value!r}")
    return seconds


class _LimitsBehaviour:
    """What TraceLimits does; its fields are generated from LIMITS below."""

    def __post_init__(self) -> None:
        # Checked as TraceSpec checks them, so a bad value fails where it is written.
        for name, option in LIMITS.items():
            value = getattr(self, name)
            value = parse_duration(value) if option is DURATION else check(name, value)
            object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> "TraceLimits":
        """A copy with ``changes``, checked."""
        unknown = sorted(set(changes) - set(LIMITS))
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], list(LIMITS), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise TraceLimitError(f"unknown trace limit {unknown[0]!r}{hint} Limits: "
                                  f"{', '.join(LIMITS)}")
        return dataclasses.replace(self, **changes)

    def tighter(self, other: "TraceLimits") -> "TraceLimits":
        """Each limit the lower of the two (a duration of None has no bound)."""
        def lower(a: Any, b: Any) -> Any:
            return b if a is None else a if b is None else min(a, b)
        return self.replace(**{name: lower(getattr(self, name), getattr(other, name))
                               for name in LIMITS})

    def above(self, ceiling: "TraceLimits") -> tuple[str, Any, Any] | None:
        """The first limit above ``ceiling``'s, as (name, value, ceiling), or None."""
        for name in LIMITS:
            value, most = getattr(self, name), getattr(ceiling, name)
            if most is not None and (value is None or value > most):
                return name, value, most
        return None

    def trace_options(self) -> dict[str, Any]:
        """These limits as ``Session.trace`` keywords: ``s.trace(**limits.trace_options())``."""
        return {option.keyword: getattr(self, name) for name, option in LIMITS.items()}

    def __repr__(self) -> str:
        def shown(value: Any) -> str:
            return f"{value:,}" if isinstance(value, int) else f"{value!r}"
        fields = ", ".join(f"{name}={shown(getattr(self, name))}" for name in LIMITS)
        return f"{type(self).__name__}({fields})"


TraceLimits = dataclasses.make_dataclass(
    "TraceLimits", [(name, option.kind | None if option.default is None else option.kind,
                     dataclasses.field(default=option.default, metadata={"doc": option.doc}))
                    for name, option in LIMITS.items()],
    bases=(_LimitsBehaviour,), frozen=True, repr=False, namespace={
        "__module__": __name__,
        "__doc__": "How much one trace may take of the node, checked when made (httpx's "
                   "``Limits`` in spirit).\n\n" + "\n".join(
                       f"    ``{name}`` ({option.default!r}): {option.doc}."
                       for name, option in LIMITS.items())})

# What an assistant's trace may take when nobody watches it run (pre-approved by
# ``microscope mcp --allow-trace`` or ``%beam_mcp start --allow-trace``): deliberately
# tighter than a notebook's, so an assistant's mistake stays small, and bounded in
# time, since an assistant may never call stop_trace. The human raises it with
# --max-events, --max-rate, --max-payload and --max-duration.
ASSISTANT_CEILINGS = TraceLimits(max_events=100_000, max_rate=50_000, duration_s=30.0)


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


def flag_help(indent: int) -> str:
    """The %trace flags, one paragraph each with its default, for the magic's help."""
    import textwrap

    out = []
    for flag, option in TRACE_FLAGS.items():
        if option.kind is bool:
            usage, text = flag, ("turn off: " if option.default else "turn on: ") + option.doc
        elif option is DURATION:
            usage, text = f"{flag} 5s", option.doc
        else:
            usage, text = f"{flag} N", f"{option.doc} (default {option.default:,})"
        out.append(textwrap.fill(text, 96, initial_indent=" " * indent + f"{usage:<18}",
                                 subsequent_indent=" " * (indent + 18)))
    return "\n".join(out).strip()
