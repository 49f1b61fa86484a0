"""What to trace, and within which limits: checked in Python before the node sees it.

    TraceSpec.build(procs=["Demo.WorkerB", "<0.123.0>"], modules=["Demo.WorkerB.handle_info/2"])

Names travel as binaries, never atoms: the agent resolves them against atoms
that already exist, so a typo cannot grow the node's atom table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..beam.terms import Atom, Pid
from ..errors import TraceLimitError, TraceSpecError
from ..render.names import erlang_module_name

__all__ = ["TraceSpec", "parse_duration", "module_spec", "process_spec"]

ANY = Atom("_")
_MFA = re.compile(r"^(?P<mod>:?[\w.@]+?)(?:[.:](?P<fun>[a-z_][\w?!]*))?(?:/(?P<arity>\d+))?$")


def module_spec(text: str) -> tuple[str, Any, Any]:
    """``"MyApp.Worker.handle_info/2"`` -> ``("Elixir.MyApp.Worker", "handle_info", 2)``."""
    text = text.strip()
    if ":" in text[1:] and not text.startswith(":"):      # Erlang form lists:seq/2
        mod, _, rest = text.partition(":")
        fun, _, arity = rest.partition("/")
        return mod, fun or ANY, int(arity) if arity else ANY
    match = _MFA.match(text)
    if not match:
        raise TraceSpecError(f"cannot read {text!r} as a module or function; write MyApp.Worker, "
                             "MyApp.Worker.handle_call/3 or :lists.seq/2")
    mod, fun, arity = match["mod"], match["fun"], match["arity"]
    # "MyApp.Worker" has no lowercase last segment, so no function.
    return erlang_module_name(mod), fun or ANY, int(arity) if arity else ANY


def process_spec(proc: Any) -> Any:
    """A pid, ``"<0.12.0>"``, a registered name or an Elixir module alias."""
    if isinstance(proc, Pid):
        return proc
    if not isinstance(proc, str) or not proc:
        raise TraceSpecError(f"expected a pid, '<0.123.0>' or a registered name, got {proc!r}")
    if proc.startswith("<") and proc.endswith(">"):
        return proc
    return erlang_module_name(proc)


def parse_duration(value: Any) -> float | None:
    """Seconds from 5, 5.0, "5s", "500ms", "2m"; None for no duration."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*", str(value))
        if not match:
            raise TraceLimitError(f"cannot read duration {value!r}; write 5, '5s', '500ms' or '2m'")
        number, unit = float(match[1]), match[2] or "s"
        seconds = number * {"ms": 0.001, "s": 1, "m": 60, "min": 60}[unit]
    if seconds <= 0:
        raise TraceLimitError(f"duration must be positive, got {value!r}")
    return seconds


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TraceLimitError(f"{name}={value!r} cannot work; it must be a positive integer")
    return value


@dataclass
class TraceSpec:
    procs: list[Any] | None = None
    modules: list[tuple[str, Any, Any]] = field(default_factory=list)
    messages: bool = True
    lifecycle: bool = True
    state: bool = True
    gc: bool = False
    max_events: int = 1_000_000
    max_rate: int = 200_000
    duration_s: float | None = None
    payload_limit: int = 4096
    batch_events: int = 2000
    flush_ms: int = 50
    shed_queue: int = 50_000
    max_queue: int = 500_000
    system_monitor: bool | None = None     # None: only if the node's monitor is free
    long_gc_ms: int = 50
    long_schedule_ms: int = 50
    large_heap_words: int = 1_000_000
    mailbox_ms: int = 100                  # how often real mailbox lengths are sampled

    @classmethod
    def build(cls, procs: Iterable[Any] = (), modules: Iterable[str] = (), *,
              duration: Any = None, system_monitor: Any = None, **limits: Any) -> "TraceSpec":
        thresholds: dict[str, Any] = {}
        if isinstance(system_monitor, dict):
            unknown = set(system_monitor) - {"long_gc_ms", "long_schedule_ms", "large_heap_words"}
            if unknown:
                raise TraceLimitError(f"unknown system_monitor threshold {sorted(unknown)[0]!r}; "
                                      "use long_gc_ms, long_schedule_ms, large_heap_words")
            thresholds, system_monitor = dict(system_monitor), True
        spec = cls(procs=[process_spec(p) for p in procs] or None,
                   modules=[module_spec(m) for m in modules],
                   duration_s=parse_duration(duration), system_monitor=system_monitor,
                   **thresholds, **limits)
        for name in ("max_events", "max_rate", "payload_limit", "batch_events", "flush_ms",
                     "shed_queue", "max_queue", "long_gc_ms", "long_schedule_ms",
                     "large_heap_words", "mailbox_ms"):
            _positive(name, getattr(spec, name))
        return spec

    def to_agent_opts(self) -> dict:
        opts = {
            Atom("procs"): Atom("all") if self.procs is None else list(self.procs),
            Atom("modules"): [(m, f, a) for m, f, a in self.modules],
            Atom("messages"): self.messages,
            Atom("lifecycle"): self.lifecycle,
            Atom("state"): self.state,
            Atom("gc"): self.gc,
            Atom("max_events"): self.max_events,
            Atom("max_rate"): self.max_rate,
            Atom("duration_ms"): (Atom("infinity") if self.duration_s is None
                                  else max(1, int(self.duration_s * 1000))),
            Atom("payload_limit"): self.payload_limit,
            Atom("batch_events"): self.batch_events,
            Atom("flush_ms"): self.flush_ms,
            Atom("shed_queue"): self.shed_queue,
            Atom("max_queue"): self.max_queue,
            Atom("system_monitor"): (Atom("auto") if self.system_monitor is None
                                     else bool(self.system_monitor)),
            Atom("long_gc_ms"): self.long_gc_ms,
            Atom("long_schedule_ms"): self.long_schedule_ms,
            Atom("large_heap_words"): self.large_heap_words,
            Atom("mailbox_ms"): self.mailbox_ms,
        }
        return opts

    def describe(self) -> dict[str, Any]:
        """JSON-friendly, for saved sessions and notebooks."""
        return {
            "procs": None if self.procs is None else [str(p) for p in self.procs],
            "modules": [f"{m}:{f}/{a}" for m, f, a in self.modules],
            "messages": self.messages, "lifecycle": self.lifecycle, "state": self.state,
            "gc": self.gc, "max_events": self.max_events, "max_rate": self.max_rate,
            "duration_s": self.duration_s, "payload_limit": self.payload_limit,
        }
