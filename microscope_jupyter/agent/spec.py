"""What to trace, and within which limits: checked in Python before the node sees it.

    TraceSpec.build(procs=["Demo.WorkerB", "<0.123.0>"], modules=["Demo.WorkerB.handle_info/2"])

Names travel as binaries, never atoms: the agent resolves them against atoms
that already exist, so a typo cannot grow the node's atom table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..beam.terms import Atom, Pid
from ..errors import TraceLimitError, TraceSpecError
from ..render.names import erlang_module_name, format_module
from .options import OPTIONS, THRESHOLDS, check, defaults, parse_duration

__all__ = ["TraceSpec", "parse_duration", "module_spec", "process_spec", "spec_error"]

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


@dataclass
class TraceSpec:
    """What to trace and within which limits; the limits are ``options.OPTIONS``."""

    procs: list[Any] | None = None
    modules: list[tuple[str, Any, Any]] = field(default_factory=list)
    duration_s: float | None = None
    system_monitor: bool | None = None     # None: only if the node's monitor is free
    options: dict[str, Any] = field(default_factory=defaults)

    def __getattr__(self, name: str) -> Any:
        # spec.max_rate and friends read as attributes
        options = self.__dict__.get("options")
        if options is not None and name in options:
            return options[name]
        raise AttributeError(name)

    @classmethod
    def build(cls, procs: Iterable[Any] = (), modules: Iterable[str] = (), *,
              duration: Any = None, system_monitor: Any = None, **options: Any) -> "TraceSpec":
        if isinstance(system_monitor, dict):
            unknown = set(system_monitor) - set(THRESHOLDS)
            if unknown:
                raise TraceLimitError(f"unknown system_monitor threshold {sorted(unknown)[0]!r}; "
                                      f"use {', '.join(THRESHOLDS)}")
            options = {**options, **system_monitor}
            system_monitor = True
        checked = defaults()
        checked.update({name: check(name, value) for name, value in options.items()})
        return cls(procs=[process_spec(p) for p in procs] or None,
                   modules=[module_spec(m) for m in modules],
                   duration_s=parse_duration(duration), system_monitor=system_monitor,
                   options=checked)

    def to_agent_opts(self) -> dict:
        opts = {Atom(name): value for name, value in self.options.items()}
        opts.update({
            Atom("procs"): Atom("all") if self.procs is None else list(self.procs),
            Atom("modules"): [(m, f, a) for m, f, a in self.modules],
            Atom("duration_ms"): (Atom("infinity") if self.duration_s is None
                                  else max(1, int(self.duration_s * 1000))),
            Atom("system_monitor"): (Atom("auto") if self.system_monitor is None
                                     else bool(self.system_monitor)),
        })
        return opts

    def trace_flags(self) -> list[str]:
        """The trace flags the agent sets on each traced process (its trace_flags/2):
        what a person approving this trace is told it sets."""
        flags = ["set_on_spawn", "monotonic_timestamp"]
        if self.options["messages"]:
            flags += ["send", "receive"]
        flags.append("procs")
        if self.modules or self.options["lifecycle"]:   # monitors are seen as calls
            flags.append("call")
        if self.options["gc"]:
            flags.append("garbage_collection")
        return flags

    def describe(self) -> dict[str, Any]:
        """JSON-friendly, for saved sessions and notebooks."""
        return {
            "procs": None if self.procs is None else [str(p) for p in self.procs],
            "modules": [f"{m}:{f}/{a}" for m, f, a in self.modules],
            "duration_s": self.duration_s,
            **{name: value for name, value in self.options.items() if OPTIONS[name].public},
        }


def _near_name(wanted: str, registered: Callable[[], Iterable[Any]] | None,
               text: Callable[[Any], str]) -> str:
    """"; did you mean X?" for the registered name nearest ``wanted``, or ""."""
    if registered is None:
        return ""
    import difflib
    try:
        names = [text(str(n)) for n in registered()]
    except Exception:  # noqa: BLE001 - a hint is no reason to lose the error itself
        return ""
    close = difflib.get_close_matches(wanted, names, n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


def spec_error(reason: Any, node: str, registered: Callable[[], Iterable[Any]] | None = None
               ) -> TraceSpecError:
    """The agent's refusal of a trace, as the one line a user can act on;
    ``registered`` (the node's registered names, asked only for an unknown
    process) gives a "did you mean" for a near miss."""
    def text(x: Any) -> str:
        if isinstance(x, (bytes, str)):
            x = x.decode() if isinstance(x, bytes) else x
            return format_module(x) if x[:1].isupper() or x.startswith("Elixir.") else x
        return str(x)

    if isinstance(reason, tuple) and reason:
        tag = str(reason[0])
        if tag == "no_such_process":
            wanted = text(reason[1])
            hint = _near_name(wanted, registered, text)
            return TraceSpecError(f"no process {wanted} on {node}{hint}; list them with "
                                  "s.processes() and try again", reason)
        if tag == "no_such_module":
            return TraceSpecError(f"module {text(reason[1])} is not loaded on {node} nor on its "
                                  "code path; check the spelling (Elixir modules as MyApp.Worker)",
                                  reason)
        if tag == "no_such_function":
            _, module, fun, arity = reason
            arity_text = "" if arity == Atom("_") else f"/{arity}"
            fun_text = "" if fun == Atom("_") else f".{text(fun)}"
            return TraceSpecError(f"{text(module)}{fun_text}{arity_text} does not exist on "
                                  f"{node}; check the name and arity", reason)
        if tag == "dangerous":
            what = reason[1]
            if what == Atom("tracing_the_agent"):
                return TraceSpecError("refusing to trace the microscope agent itself: it would "
                                      "trace its own tracing", reason)
            module = format_module(str(what[1]))
            return TraceSpecError(f"refusing to trace all of {module}: every process calls it, so "
                                  f"the trace would swamp the node; name one function instead, "
                                  f"e.g. {module}.some_function/1", reason)
        if tag == "pattern_in_use":
            _, module, fun, arity = reason
            return TraceSpecError(f"{format_module(str(module))}.{fun}/{arity} already has a trace "
                                  "pattern set by another tool (dbg, recon, redbug); microscope "
                                  "will not overwrite it. Stop that trace first (OTP 27+ nodes "
                                  "keep traces apart and do not have this limit)", reason)
        if tag == "bad_limit":
            return TraceLimitError(f"{reason[1]}={reason[2]!r} cannot work; limits are positive "
                                   "integers", reason)
    return TraceSpecError(f"the agent on {node} refused the trace: {reason!r}", reason)
