"""The MCP tools: ``build_server(assistant)`` gives an ``MCPServer`` over the engine."""

# (no `from __future__ import annotations`: the MCP SDK reads the tools' annotations,
# and Resolve(...) names a closure, so they are evaluated where they are written)

from dataclasses import asdict
from typing import Annotated

import numpy as np

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.types import ToolAnnotations

from ..analysis.pattern import compile_pattern, match_message
from ..errors import MicroscopeError
from ..package_data import version
from .engine import Approval, Assistant, NotAsked, SaveRequest, TraceRequest, cell

__all__ = ["build_server"]


def build_server(assistant: Assistant):
    """An ``MCPServer`` whose tools read and record through ``assistant``."""
    server = MCPServer("beam-microscope", version=version(), log_level="WARNING", instructions=(
        "BEAM Microscope: look inside a live Elixir/Erlang node. Start with node_info and "
        "processes or supervision_tree; findings and explain say what went wrong in the "
        "recording; propose_trace asks the human to record more. Answers are capped: follow "
        "the cursor a cut answer gives, and pass since=<seq> to get only what is new."))
    s = assistant.session
    read_only = ToolAnnotations(readOnlyHint=True)

    def audited(name: str, arguments: dict, produce) -> str:
        try:
            for key in ("cursor", "window"):
                if arguments.get(key, 0) < 0:
                    raise MicroscopeError(f"{key} must be 0 or more, not {arguments[key]}")
            text = produce()
        except MicroscopeError as exc:
            text = f"error: {_first_line(exc)}"
        except AttributeError as exc:
            # a live-node question asked of a saved recording (no processes there)
            live = getattr(s, "attached", False)
            text = (f"error: {name} needs a live node, and this session is a saved recording; "
                    "ask the recording instead (findings, messages, explain...)" if not live else
                    f"error: {name} could not answer ({type(exc).__name__}: {_first_line(exc)})")
        except Exception as exc:  # noqa: BLE001 - one line to the assistant, never a bare failure
            text = (f"error: {name} could not answer these arguments ({type(exc).__name__}: "
                    f"{_first_line(exc)})")
        assistant.record(name, arguments, text)
        return text

    @server.tool(annotations=read_only)
    def node_info() -> str:
        """The attached node: name, OTP and Elixir versions, schedulers, applications."""
        return audited("node_info", {}, lambda: assistant.page(
            "\n".join(f"{k}: {cell(v)}" for k, v in s.node_info().items())))

    @server.tool(annotations=read_only)
    def processes(filter: str = "", sort: str = "memory", cursor: int = 0) -> str:
        """Live processes, one per line: pid, name, initial call, status, mailbox, memory,
        reductions. `filter` keeps lines containing it (a name, a module); `sort` is a
        column, largest first."""
        def produce():
            table = s.processes()
            if filter:
                keep = [filter in " ".join(cell(v) for v in row)
                        for row in table.itertuples(index=False)]
                table = table[keep]
            if sort in table.columns:
                table = table.sort_values(sort, ascending=False, kind="stable")
            return assistant.table(table, list(table.columns), cursor)
        return audited("processes", {"filter": filter, "sort": sort, "cursor": cursor}, produce)

    @server.tool(annotations=read_only)
    def supervision_tree(cursor: int = 0) -> str:
        """The live process tree: pid, name, parent, kind (supervisor/worker), initial call."""
        return audited("supervision_tree", {"cursor": cursor}, lambda: assistant.table(
            s.supervision_tree(), ["pid", "name", "parent", "kind", "initial_call",
                                   "message_queue_len"], cursor))

    def can_elicit(ctx: Context) -> bool:
        caps = ctx.request_context.session.client_capabilities
        return caps is not None and caps.elicitation is not None

    def ask_human(reason: str, ctx: Context, processes: list[str] | None = None,
                  modules: list[str] | None = None, duration_s: float = 5.0,
                  max_events: int = 50_000, max_rate: int = 20_000, payload_limit: int = 2048):
        if assistant.ceilings is not None or not can_elicit(ctx):
            return NotAsked()         # the ceilings say, or the notebook decides
        request = TraceRequest(list(processes or []), list(modules or []), duration_s,
                               max_events, max_rate, payload_limit, reason)
        try:
            lines = request.describe()
        except MicroscopeError:
            return NotAsked()         # refused before anyone is asked
        return Elicit("The assistant asks to start this trace:\n" + "\n".join(
            f"- {line}" for line in lines) + "\nApprove?", Approval)

    def decide(proposal, answer, tool: str, arguments: dict) -> str:
        """Apply the human's answer (or the lack of one) to ``proposal``."""
        data = getattr(answer, "data", None)
        if isinstance(data, Approval) and data.approve:
            assistant.start(proposal, "elicitation")
        elif isinstance(data, Approval):
            assistant.decline(proposal, "elicitation", "declined by the human")
        elif getattr(answer, "action", None) in ("decline", "cancel"):
            assistant.decline(proposal, "elicitation", f"the human chose {answer.action}")
        else:
            assistant.waiting(proposal)
        text = f"proposal {proposal.id}: {proposal.status}. {proposal.message}"
        assistant.record(tool, arguments, text)
        return text

    @server.tool()
    def propose_trace(reason: str, processes: list[str] | None = None,
                      modules: list[str] | None = None, duration_s: float = 5.0,
                      max_events: int = 50_000, max_rate: int = 20_000, payload_limit: int = 2048,
                      answer: Annotated[ElicitationResult[Approval], Resolve(ask_human)] = None,
                      ) -> str:
        """Propose recording processes (names, pids or supervisors; none = every process)
        and call-tracing `modules` ("Mod.fun/2"), with limits and your reason. Nothing
        starts until the human approves: through this client when it can ask, in the
        notebook, or by a pre-approval with ceilings. Then use trace_status, findings,
        messages and explain on what it recorded."""
        request = TraceRequest(list(processes or []), list(modules or []), duration_s,
                               max_events, max_rate, payload_limit, reason)
        proposal = assistant.propose(request)
        try:
            request.spec()                      # what s.trace would refuse, refused now
        except MicroscopeError as exc:
            proposal.status, proposal.message = "refused", _first_line(exc)
        else:
            if assistant.ceilings is not None:      # the human decided ahead, by ceilings
                refusal = assistant.ceilings.refuse(request)
                if refusal:
                    proposal.status, proposal.message = "refused", refusal
                else:
                    assistant.start(proposal, "pre-approval")
            else:
                return decide(proposal, answer, "propose_trace", asdict(request))
        text = f"proposal {proposal.id}: {proposal.status}. {proposal.message}"
        assistant.record("propose_trace", asdict(request), text)
        return text

    @server.tool(annotations=read_only)
    def trace_status() -> str:
        """The current recording (events, rate, drops) and every proposal's status."""
        def produce():
            lines = [f"proposal {p.id}: {p.status}"
                     + (f" by {p.decided_by}" if p.decided_by else "") + f". {p.message}"
                     for p in assistant.proposals.values()]
            rec = assistant.recording
            if rec is not None:
                st = rec.status()
                lines.append("recording: " + ", ".join(
                    f"{k}={cell(v)}" for k, v in st.items() if k not in ("message", "notes")))
                lines += st.get("notes", [])     # sentences, such as no BeamMicroscope there
            lines.append(f"events in the session: {len(s.store)}")
            return assistant.page("\n".join(lines))
        return audited("trace_status", {}, produce)

    @server.tool()
    def stop_trace() -> str:
        """Stop the trace the assistant started; every event it kept is then queryable."""
        def produce():
            rec = assistant.recording
            if rec is None or rec.state != "running":
                return "no trace of the assistant's is running"
            rec.stop()
            return f"stopped; {len(s.store)} events in the session"
        return audited("stop_trace", {}, produce)

    @server.tool(annotations=read_only)
    def findings(since: int | None = None, cursor: int = 0) -> str:
        """What went wrong, one line per kind and process: kind, severity, name, summary,
        count, first and last seq (evidence)."""
        return audited("findings", {"since": since, "cursor": cursor}, lambda: assistant.table(
            s.findings(), ["kind", "severity", "pid", "name", "count", "first_seq", "last_seq",
                           "summary"], cursor, since, "last_seq"))

    @server.tool(annotations=read_only)
    def explain(question: str = "") -> str:
        """Why the recording went as it did, in one paragraph, then each cause with its
        evidence seqs. Names in the question focus it."""
        def produce():
            e = s.explain(question or None)
            causes = "\n".join(f"{r.rank}. {r.kind} ({r.confidence:.1f}): evidence "
                               f"{list(r.evidence)[:12]}" for r in e.causes.itertuples())
            return assistant.page(e.text + ("\n\ncauses:\n" + causes if causes else ""))
        return audited("explain", {"question": question}, produce)

    @server.tool(annotations=read_only)
    def messages(pattern: str = "", between: str = "", since: int | None = None,
                 cursor: int = 0) -> str:
        """Messages, each send joined to its receive: seqs, sender, receiver, text, status
        (delivered, lost, in_flight). `pattern` is an Elixir pattern ("{:update, _}");
        `between` two names or pids, "A,B"."""
        def produce():
            table = s.messages()
            if between:
                if "," not in between:
                    raise MicroscopeError(f"between takes two names or pids, 'A,B', not "
                                          f"{between!r}")
                a, _, b = between.partition(",")
                names = {a.strip(), b.strip()}
                who = (table["sender_name"].fillna(table["sender"]).astype(str),
                       table["receiver_name"].fillna(table["receiver"]).astype(str))
                table = table[who[0].isin(names) & who[1].isin(names)]
            if pattern:
                matches = compile_pattern(pattern)    # as s.query.trace_message matches
                # a boolean array, never a list: an empty list would select no columns
                table = table[np.array([match_message(matches, t) is not None
                                        for t in table["term"]], dtype=bool)]
            seq = table["send_seq"].fillna(table["receive_seq"]).astype("int64")
            return assistant.table(table.assign(seq=seq), [
                "seq", "send_seq", "receive_seq", "sender_name", "sender", "receiver_name",
                "receiver", "text", "status"], cursor, since, "seq")
        return audited("messages", {"pattern": pattern, "between": between, "since": since,
                                    "cursor": cursor}, produce)

    @server.tool(annotations=read_only)
    def state_timeline(proc: str, since: int | None = None, cursor: int = 0) -> str:
        """Every GenServer transition of `proc`: seq, callback, the message, what changed."""
        return audited("state_timeline", {"proc": proc, "since": since, "cursor": cursor},
                       lambda: assistant.table(s.query.state_timeline(proc), [
                           "seq", "callback", "message_text", "changes", "duration_us"],
                           cursor, since, "seq"))

    @server.tool(annotations=read_only)
    def snapshot_at(seq: int, cursor: int = 0) -> str:
        """Every process at one moment (a seq): alive, state, mailbox, links, monitors."""
        return audited("snapshot_at", {"seq": seq, "cursor": cursor}, lambda: assistant.table(
            s.time_travel().snapshot_at(seq), ["pid", "name", "alive", "state_text",
                                               "mailbox_len", "mailbox_basis", "current_callback"],
            cursor))

    @server.tool(annotations=read_only)
    def events_around(seq: int, window: int = 20, cursor: int = 0) -> str:
        """The events just before and after a seq (kind, pid, name, peer, text)."""
        def produce():
            events = s.events
            near = events[(events["seq"] >= seq - window) & (events["seq"] <= seq + window)]
            return assistant.table(near, ["seq", "ts", "kind", "pid", "name", "peer", "text"],
                                   cursor)
        return audited("events_around", {"seq": seq, "window": window, "cursor": cursor},
                       produce)

    @server.tool(annotations=read_only)
    def calls(since: int | None = None, cursor: int = 0) -> str:
        """Traced function calls (modules traced by a trace): mfa, args, result, duration."""
        return audited("calls", {"since": since, "cursor": cursor}, lambda: assistant.table(
            s.calls(), ["call_seq", "pid", "name", "mfa", "args_text", "result_text",
                        "duration_us", "status"], cursor, since, "call_seq"))

    @server.tool(annotations=read_only)
    def exunit(proc: str, mode: str = "reproduce", cursor: int = 0) -> str:
        """An ExUnit test replaying what `proc` received (mode "reproduce" asserts what
        happened, "regression" what should have)."""
        return audited("exunit", {"proc": proc, "mode": mode, "cursor": cursor},
                       lambda: assistant.page(s.exunit(proc, mode=mode).source, cursor))

    def ask_save(path: str, ctx: Context, reason: str = ""):
        if assistant.allow_save or not can_elicit(ctx):
            return NotAsked()
        try:
            target = assistant.save_target(path)
        except MicroscopeError:
            return NotAsked()         # refused before anyone is asked
        return Elicit("The assistant asks to save:\n" + "\n".join(
            f"- {line}" for line in SaveRequest(path, target, reason).describe())
            + "\nApprove?", Approval)

    @server.tool()
    def save(path: str, reason: str = "",
             answer: Annotated[ElicitationResult[Approval], Resolve(ask_save)] = None) -> str:
        """Propose saving the session (events, metadata, this audit) as a new folder
        `path` inside the folder the human configured for saves; they open it with
        mic.load. Like a trace, it waits for the human's approval."""
        arguments = {"path": path, "reason": reason}
        try:
            target = assistant.save_target(path)
        except MicroscopeError as exc:
            text = f"error: {_first_line(exc)}"
            assistant.record("save", arguments, text)
            return text
        proposal = assistant.propose(SaveRequest(path, target, reason))
        if assistant.allow_save:
            assistant.start(proposal, "pre-approval")
            text = f"proposal {proposal.id}: {proposal.status}. {proposal.message}"
            assistant.record("save", arguments, text)
            return text
        return decide(proposal, answer, "save", arguments)

    return server


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
