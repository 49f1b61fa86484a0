"""The MCP tools as one table: each row is the Session or Query method a notebook calls.

    Tool("events_around", "s.query.events_around", "The events either side of a seq ...",
         (Argument("seq", int, "...", to="t"), Argument("window_ms", float, "...", METHOD)),
         columns=("seq", "ts", "kind", "pid", "name", "peer", "text"))

A tool answers what its method answers in the notebook, so an assistant and a
person asking the same recording see the same rows. A row says:

- ``method``: what it calls, as a notebook writes it (``s`` is the session;
  ``assistant`` the engine, for the tools about its own proposals and trace);
- ``arguments``: each passed to the method under its name (or ``to``), or,
  with ``keep``, applied to the method's answer (a filter, a sort); one with
  ``picks`` calls that method instead when given (``messages(between="A,B")``
  is ``s.query.message_flow("A", "B")``). A default of ``METHOD`` is the
  method's own, so a tool and its method cannot disagree on it;
- ``columns`` and ``since`` for a table (``since=`` keeps rows past a seq in
  that column), ``text`` for an answer that is not one;
- its cap: every answer is cut at the assistant's cap on a line end; a
  ``paged`` tool takes ``cursor=`` to read on;
- ``approval``: the tool starts nothing until the human approves (the
  engine's proposals: ``propose_trace``, ``investigate``'s traces, ``save``).

``answer(assistant, tool, arguments)`` is the whole of a reading tool;
``tools.build_server`` turns each row into an MCP tool.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..agent.options import LIMITS
from ..analysis.pattern import compile_pattern, match_message
from ..errors import MicroscopeError
from .engine import Assistant, cell

__all__ = ["Tool", "Argument", "TOOLS", "METHOD", "REQUIRED", "answer", "method_of", "call_of"]

REQUIRED = inspect.Parameter.empty
METHOD = object()       # an argument's default: the method's own


@dataclass(frozen=True)
class Argument:
    name: str
    kind: Any                           # its type, for the MCP schema
    doc: str
    default: Any = REQUIRED
    to: str | None = None               # the method's parameter, when named otherwise
    keep: Callable[[Any, Any], Any] | None = None   # applied to the answer, not passed
    picks: str | None = None            # given ("A,B"), this method is called instead, on A, B
    nonnegative: bool = False


@dataclass(frozen=True)
class Tool:
    name: str
    method: str
    doc: str
    arguments: tuple[Argument, ...] = ()
    columns: tuple[str, ...] | None = None      # a table's columns (None: every one)
    since: str | None = None                    # the seq column since= filters on
    text: Callable[[Any], str] | None = None    # an answer that is not a table, as text
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None   # columns a table adds
    paged: bool = True                          # takes cursor= to read past the cap
    approval: bool = False                      # starts nothing until the human approves
    read_only: bool = True

    def all_arguments(self) -> tuple[Argument, ...]:
        """The tool's arguments, with since= and cursor= where it takes them."""
        extra = ((SINCE,) if self.since else ()) + ((CURSOR,) if self.paged else ())
        return self.arguments + extra


# Every table tool's since= and every paged tool's cursor=, which the answer's
# table and page apply.
SINCE = Argument("since", int | None, "only rows past this seq: the newest seq a previous "
                 "answer gave", None)
CURSOR = Argument("cursor", int, "where a cut answer goes on: the cursor it gave", 0,
                  nonnegative=True)
PROC = Argument("proc", str, "a process: a registered name, a module alias or a pid")


def _containing(table: pd.DataFrame, text: str) -> pd.DataFrame:
    if not text:
        return table
    return table[[text in " ".join(cell(v) for v in row) for row in table.itertuples(index=False)]]


def _sorted(table: pd.DataFrame, column: str) -> pd.DataFrame:
    if column not in table.columns:
        return table
    return table.sort_values(column, ascending=False, kind="stable")


def _matching(messages: pd.DataFrame, pattern: str) -> pd.DataFrame:
    if not pattern:
        return messages
    matches = compile_pattern(pattern)          # as s.query.trace_message matches
    # a boolean array, never a list: an empty list would select no columns
    return messages[np.array([match_message(matches, t) is not None
                              for t in messages["term"]], dtype=bool)]


def _message_seq(messages: pd.DataFrame) -> pd.DataFrame:
    """A message's seq: its send's, else (sent from outside the trace) its receive's."""
    return messages.assign(seq=messages["send_seq"].fillna(messages["receive_seq"])
                           .astype("int64"))


def _node_lines(info: dict) -> str:
    return "\n".join(f"{k}: {cell(v)}" for k, v in info.items())


def _explanation(e: Any) -> str:
    causes = "\n".join(f"{r.rank}. {r.kind} ({r.confidence:.1f}): evidence "
                       f"{list(r.evidence)[:12]}" for r in e.causes.itertuples())
    return e.text + ("\n\ncauses:\n" + causes if causes else "")


def _limit_arguments() -> tuple[Argument, ...]:
    """propose_trace's limits: TraceLimits' fields, left out for the assistant's defaults."""
    return tuple(Argument(name, option.kind | None, f"{option.doc}; left out: the notebook's "
                          "default within the human's ceilings", None)
                 for name, option in LIMITS.items())


TOOLS: tuple[Tool, ...] = (
    Tool("node_info", "s.node_info", "The attached node: name, OTP and Elixir versions, "
         "schedulers, applications.", text=_node_lines, paged=False),
    Tool("processes", "s.processes", "Live processes, one per line: pid, name, initial call, "
         "status, mailbox, memory, reductions. `filter` keeps lines containing it (a name, a "
         "module); `sort` is a column, largest first.", (
             Argument("filter", str, "keep the lines containing this text", "",
                      keep=_containing),
             Argument("sort", str, "a column, largest first", "memory", keep=_sorted))),
    Tool("supervision_tree", "s.supervision_tree", "The live process tree: pid, name, parent, "
         "kind (supervisor/worker), initial call.",
         columns=("pid", "name", "parent", "kind", "initial_call", "message_queue_len")),
    Tool("propose_trace", "s.trace", "Propose recording processes (names, pids or supervisors; "
         "none = every process) and call-tracing `modules` (\"Mod.fun/2\"), with limits and "
         "your reason. Nothing starts until the human approves: through this client when it "
         "can ask, in the notebook, or by a pre-approval with ceilings. Then use trace_status, "
         "findings, messages and explain on what it recorded.", (
             Argument("reason", str, "why this trace: the human reads it"),
             Argument("processes", list[str] | None, "names, pids or supervisors", None),
             Argument("modules", list[str] | None, "functions to call-trace, \"Mod.fun/2\"",
                      None),
             *_limit_arguments()), paged=False, approval=True, read_only=False),
    Tool("trace_status", "assistant.trace_status", "The current recording (events, rate, "
         "drops) and every proposal's status.", paged=False),
    Tool("stop_trace", "assistant.stop_trace", "Stop the trace the assistant started; every "
         "event it kept is then queryable.", paged=False, read_only=False),
    Tool("findings", "s.findings", "What went wrong, one line per kind and process: kind, "
         "severity, name, summary, count, first and last seq (evidence).",
         columns=("kind", "severity", "pid", "name", "count", "first_seq", "last_seq",
                  "summary"), since="last_seq"),
    Tool("explain", "s.explain", "Why the recording went as it did, in one paragraph, then "
         "each cause with its evidence seqs. Names in the question focus it.",
         (Argument("question", str, "a question, such as why a process misses messages", ""),),
         text=_explanation, paged=False),
    Tool("messages", "s.messages", "Messages, each send joined to its receive: seqs, sender, "
         "receiver, text, status (delivered, lost, in_flight). `pattern` is an Elixir pattern "
         "(\"{:update, _}\"); `between` two names or pids, \"A,B\": both directions, every pid "
         "that held either name, as s.query.message_flow(A, B).", (
             Argument("pattern", str, "an Elixir pattern the message matches", "",
                      keep=_matching),
             Argument("between", str, "two names or pids, \"A,B\"", "",
                      picks="s.query.message_flow")),
         columns=("seq", "direction", "send_seq", "receive_seq", "sender_name", "sender",
                  "receiver_name", "receiver", "text", "status"), since="seq",
         prepare=_message_seq),
    Tool("state_timeline", "s.query.state_timeline", "Every GenServer transition of `proc`: "
         "seq, callback, the message, what changed.", (PROC,),
         columns=("seq", "callback", "message_text", "changes", "duration_us"), since="seq"),
    Tool("snapshot_at", "s.time_travel().snapshot_at", "Every process at one moment (a seq): "
         "alive, state, mailbox, links, monitors.",
         (Argument("seq", int, "the moment, a seq", to="t"),),
         columns=("pid", "name", "alive", "state_text", "mailbox_len", "mailbox_basis",
                  "current_callback")),
    Tool("events_around", "s.query.events_around", "The events within `window_ms` "
         "milliseconds either side of a seq's (kind, pid, name, peer, text), as "
         "s.query.events_around(seq, window_ms).", (
             Argument("seq", int, "the event in the middle, a seq", to="t"),
             Argument("window_ms", float, "milliseconds either side", METHOD,
                      nonnegative=True)),
         columns=("seq", "ts", "kind", "pid", "name", "peer", "text")),
    Tool("calls", "s.calls", "Traced function calls (modules traced by a trace): mfa, args, "
         "result, duration.", columns=("call_seq", "pid", "name", "mfa", "args_text",
                                        "result_text", "duration_us", "status"),
         since="call_seq"),
    Tool("exunit", "s.exunit", "An ExUnit test replaying what `proc` received (mode "
         "\"reproduce\" asserts what happened, \"regression\" what should have).",
         (PROC, Argument("mode", str, "\"reproduce\" or \"regression\"", METHOD)),
         text=lambda test: test.source),
    Tool("investigate", "s.investigate", "Follow a question to a confirmed cause: "
         "the hypotheses the recording supports, and for the best open one the bounded trace "
         "that would decide it. Each trace is approved like propose_trace (this client's human, "
         "the notebook, or the ceilings set ahead); call again with the same question to go "
         "on. Answers with the hypotheses, each step taken, and the explanation once "
         "confirmed.", (
             Argument("question", str, "what went wrong, as the human would ask it"),),
         paged=False, approval=True, read_only=False),
    Tool("save", "s.save", "Propose saving the session (events, metadata, this audit) as a "
         "new folder `path` inside the folder the human configured for saves; they open it "
         "with mic.load. Like a trace, it waits for the human's approval.", (
             Argument("path", str, "a new folder name inside the save folder"),
             Argument("reason", str, "why: the human reads it", "")),
         paged=False, approval=True, read_only=False),
)


def method_of(assistant: Assistant, path: str) -> Callable:
    """The callable ``path`` names: ``"s.query.events_around"``,
    ``"s.time_travel().snapshot_at"``."""
    owner, *steps = path.split(".")
    target: Any = {"s": assistant.session, "assistant": assistant}[owner]
    for step in steps:
        called = step.endswith("()")
        target = getattr(target, step.removesuffix("()"))
        target = target() if called else target
    return target


def default_of(assistant: Assistant, tool: Tool, argument: Argument) -> Any:
    """An argument's default; ``METHOD``: the method's own, read from its signature."""
    if argument.default is not METHOD:
        return argument.default
    parameter = inspect.signature(method_of(assistant, tool.method)).parameters[
        argument.to or argument.name]
    return parameter.default


def call_of(tool: Tool, arguments: dict[str, Any]) -> tuple[str, list, dict]:
    """What ``tool`` called with ``arguments`` runs: (method, positional, keywords)."""
    method, positional, keywords = tool.method, [], {}
    for argument in tool.arguments:
        value = arguments.get(argument.name, argument.default)
        if value is METHOD:
            continue                    # the method's own default
        if argument.picks:
            if value:
                parts = [p.strip() for p in str(value).split(",")]
                if len(parts) != 2 or not all(parts):
                    raise MicroscopeError(f"{argument.name} takes two names or pids, 'A,B', "
                                          f"not {value!r}")
                method, positional = argument.picks, parts
        elif argument.keep is None:
            # an empty text is a question not asked: the method's None
            keywords[argument.to or argument.name] = None if value == "" else value
    return method, positional, keywords


def answer(assistant: Assistant, tool: Tool, arguments: dict[str, Any]) -> str:
    """What a reading tool says: its method's answer, filtered, as capped text."""
    for argument in tool.all_arguments():
        value = arguments.get(argument.name)
        if argument.nonnegative and value is not None and value < 0:
            raise MicroscopeError(f"{argument.name} must be 0 or more, not {value}")
    method, positional, keywords = call_of(tool, arguments)
    result = method_of(assistant, method)(*positional, **keywords)
    for argument in tool.arguments:
        if argument.keep is not None:
            result = argument.keep(result, arguments.get(argument.name, argument.default))
    cursor = arguments.get("cursor", 0)
    if not isinstance(result, pd.DataFrame):
        return assistant.page(tool.text(result) if tool.text else str(result), cursor)
    hint = result.attrs.get("hint")     # why a query came back empty, as the notebook says
    if tool.prepare is not None:
        result = tool.prepare(result)
    text = assistant.table(result, list(tool.columns or result.columns), cursor,
                           arguments.get("since"), tool.since)
    return f"{text}\n{hint}" if hint and text == "(no rows)" else text
