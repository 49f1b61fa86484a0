"""The MCP tools: ``build_server(assistant)`` gives an ``MCPServer`` with one tool per
row of ``table.TOOLS``, each with the signature and description its row declares.

A reading tool is ``table.answer`` over its row. The three that need the human's
approval (``propose_trace``, ``investigate``, ``save``) create a proposal in the engine and ask
for the approval through MCP elicitation when the client can; the rest of
the approval flow (the notebook, pre-approval, the audit) is the engine's.
"""

# (no `from __future__ import annotations`: the MCP SDK reads the tools' annotations,
# and Resolve(...) names a closure, so they are evaluated where they are written)

import inspect
from typing import Annotated, Any, Callable

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.types import ToolAnnotations
from pydantic import Field

from ..errors import MicroscopeError
from ..package_data import version
from .engine import Approval, Assistant, NotAsked, SaveRequest
from .table import TOOLS, Argument, answer, default_of

__all__ = ["build_server"]


def build_server(assistant: Assistant):
    """An ``MCPServer`` whose tools read and record through ``assistant``."""
    server = MCPServer("beam-microscope", version=version(), log_level="WARNING", instructions=(
        "BEAM Microscope: look inside a live Elixir/Erlang node. Start with node_info and "
        "processes or supervision_tree; findings and explain say what went wrong in the "
        "recording; propose_trace asks the human to record more. Answers are capped: follow "
        "the cursor a cut answer gives, and pass since=<seq> to get only what is new."))
    s = assistant.session

    def audited(name: str, arguments: dict, produce: Callable[[], str]) -> str:
        try:
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

    def can_elicit(ctx: Context) -> bool:
        caps = ctx.request_context.session.client_capabilities
        return caps is not None and caps.elicitation is not None

    def ask_human(ctx: Context, **arguments: Any):
        if assistant.ceilings is not None or not can_elicit(ctx):
            return NotAsked()         # the ceilings say, or the notebook decides
        try:
            lines = assistant.request(**arguments).describe()
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

    def propose_trace(answer=None, **arguments: Any) -> str:
        request = assistant.request(**arguments)
        proposal = assistant.propose(request)
        try:
            request.spec()                      # what s.trace would refuse, refused now
        except MicroscopeError as exc:
            proposal.status, proposal.message = "refused", _first_line(exc)
        else:
            if assistant.ceilings is None:
                return decide(proposal, answer, "propose_trace", request.arguments())
            refusal = assistant.ceilings.refuse(request)   # the human decided ahead
            if refusal:
                proposal.status, proposal.message = "refused", refusal
            else:
                assistant.start(proposal, "pre-approval")
        text = f"proposal {proposal.id}: {proposal.status}. {proposal.message}"
        assistant.record("propose_trace", request.arguments(), text)
        return text

    def ask_save(ctx: Context, path: str, reason: str = ""):
        if assistant.allow_save or not can_elicit(ctx):
            return NotAsked()
        try:
            target = assistant.save_target(path)
        except MicroscopeError:
            return NotAsked()         # refused before anyone is asked
        return Elicit("The assistant asks to save:\n" + "\n".join(
            f"- {line}" for line in SaveRequest(path, target, reason).describe())
            + "\nApprove?", Approval)

    def save(answer=None, **arguments: Any) -> str:
        try:
            target = assistant.save_target(arguments["path"])
        except MicroscopeError as exc:
            text = f"error: {_first_line(exc)}"
            assistant.record("save", arguments, text)
            return text
        proposal = assistant.propose(SaveRequest(arguments["path"], target, arguments["reason"]))
        if assistant.allow_save:
            assistant.start(proposal, "pre-approval")
            text = f"proposal {proposal.id}: {proposal.status}. {proposal.message}"
            assistant.record("save", arguments, text)
            return text
        return decide(proposal, answer, "save", arguments)

    def ask_investigate(ctx: Context, question: str):
        inv = assistant.investigation(question)          # run until a trace waits
        if inv.pending is None or not can_elicit(ctx):
            return NotAsked()         # done, pre-approved, or the notebook decides
        return Elicit("To answer \"" + question + "\", the investigation asks to start this "
                      "trace:\n" + "\n".join(f"- {line}" for line in
                                             inv.pending.step.request.describe()
                                             + [f"predicted: {inv.pending.step.predicted}"])
                      + "\nApprove?", Approval)

    def investigate(answer=None, question: str = "") -> str:
        # the one ask_investigate just ran (or continued) for this call
        inv = assistant.investigations.get(question) or assistant.investigation(question)
        data = getattr(answer, "data", None)
        if inv.pending is not None and (isinstance(data, Approval) or getattr(
                answer, "action", None) in ("decline", "cancel")):
            inv.by = "elicitation"
            inv.approve() if isinstance(data, Approval) and data.approve else inv.deny()
        proposal = assistant.step_proposal(inv)
        text = inv.text()
        if proposal is not None:
            text += f"\nproposal {proposal.id}: {proposal.status}. {proposal.message}"
        assistant.record("investigate", {"question": question}, text)
        return text

    approvals = {"propose_trace": (propose_trace, ask_human), "save": (save, ask_save),
                 "investigate": (investigate, ask_investigate)}
    for tool in TOOLS:
        parameters = [_parameter(a, default_of(assistant, tool, a))
                      for a in tool.all_arguments()]
        if tool.approval:
            body, ask = approvals[tool.name]
            context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)
            resolver = _signed(f"ask_{tool.name}", "", [context, *parameters],
                               lambda arguments, ask=ask: ask(**arguments), None)
            answer_parameter = inspect.Parameter(
                "answer", inspect.Parameter.KEYWORD_ONLY, default=None,
                annotation=Annotated[ElicitationResult[Approval], Resolve(resolver)])
            run = _signed(tool.name, tool.doc, [*parameters, answer_parameter],
                          lambda arguments, body=body: body(**arguments), str)
        else:
            run = _signed(tool.name, tool.doc, parameters,
                          lambda arguments, tool=tool: audited(
                              tool.name, arguments, lambda: answer(assistant, tool, arguments)),
                          str)
        server.add_tool(run, name=tool.name, description=tool.doc, annotations=(
            ToolAnnotations(readOnlyHint=True) if tool.read_only else None))
    return server


def _parameter(argument: Argument, default: Any) -> inspect.Parameter:
    return inspect.Parameter(argument.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[argument.kind, Field(description=argument.doc)])


def _signed(name: str, doc: str, parameters: list[inspect.Parameter],
            body: Callable[[dict], Any], returns: Any) -> Callable:
    """A function named ``name`` taking ``parameters`` by keyword and handing them to
    ``body`` as one dict: the SDK reads its signature and annotations for the schema."""
    def run(**arguments: Any) -> Any:
        return body(arguments)
    run.__name__ = run.__qualname__ = name
    run.__doc__ = doc
    run.__signature__ = inspect.Signature(
        parameters, return_annotation=inspect.Signature.empty if returns is None else returns)
    run.__annotations__ = {p.name: p.annotation for p in parameters} | (
        {} if returns is None else {"return": returns})
    return run


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
