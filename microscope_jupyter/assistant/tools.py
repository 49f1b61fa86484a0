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
from .engine import Approval, Assistant, NotAsked, TraceRequest, cell

__all__ = ["build_server"]


def build_server(assistant: Assistant):
    """An ``MCPServer`` whose tools read and record through ``assistant``."""
    server = MCPServer("beam-microscope", log_level="WARNING", instructions=(
        "BEAM Microscope: look inside a live Elixir/Erlang node. Start with node_info and "
        "processes or supervision_tree; findings and explain say what went wrong in the "
        "recording; propose_trace asks the human to record more. Answers are capped: follow "
        "the cursor a cut answer gives, and pass since=<seq> to get only what is new."))
    s = assistant.session
    read_only = ToolAnnotations(readOnlyHint=True)

    def audited(name: str, arguments: dict, produce) -> str:
        try:
            text = produce()
        except MicroscopeError as exc:
            text = f"error: {str(exc).splitlines()[0]}"
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

    def ask_human(reason: str, ctx: Context, processes: list[str] | None = None,
                  duration_s: float = 5.0, max_events: int = 50_000):
        if assistant.ceilings is not None:
            return NotAsked()         # the human decided ahead: the ceilings say
        caps = ctx.request_context.session.client_capabilities
        if caps is None or caps.elicitation is None:
            return NotAsked()         # the notebook decides: %beam_mcp approve ID
        return Elicit(f"The assistant asks to trace {', '.join(processes or []) or 'every process'} "
                      f"for {duration_s:g} s (at most {max_events} events). Its reason: "
                      f"{reason}. Approve?", Approval)

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
        data = getattr(answer, "data", None)
        if assistant.ceilings is not None:      # the human decided ahead, by ceilings
            refusal = assistant.ceilings.refuse(request)
            if refusal:
                proposal.status, proposal.message = "refused", refusal
            else:
                assistant.start(proposal, "pre-approval")
        elif isinstance(data, Approval) and data.approve:
            assistant.start(proposal, "elicitation")
        elif isinstance(data, Approval):
            assistant.decline(proposal, "elicitation", "declined by the human")
        elif getattr(answer, "action", None) in ("decline", "cancel"):
            assistant.decline(proposal, "elicitation", f"the human chose {answer.action}")
        else:
            proposal.message = (f"waiting for the human: in the notebook, %beam_mcp approve "
                                f"{proposal.id} (or deny {proposal.id}); check trace_status")
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

    @server.tool()
    def save(path: str) -> str:
        """Save the session (events, metadata, this audit) to a directory the human can
        open with mic.load(path)."""
        return audited("save", {"path": path}, lambda: f"saved to {s.save(path)}")

    return server
