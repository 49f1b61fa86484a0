"""The engine behind the MCP tools for AI assistants over the same engine: ``microscope mcp`` and ``s.serve_mcp()``.

    server = build_server(Assistant(session, ceilings=Ceilings()))   # pre-approved, within
                                        # ASSISTANT_CEILINGS (or Ceilings(max_rate=N)...)
    server.run()                        # stdio: `microscope mcp --node app@host`
    handle = s.serve_mcp()              # streamable HTTP on 127.0.0.1 with a token

The assistant reads what the session holds (processes, findings, messages,
state timelines, time travel, explanations, ExUnit tests) and may *propose*
a trace, or a save. A proposal starts nothing by itself: the human approves
it through MCP elicitation when the client supports it, in the notebook
(``%beam_mcp approve ID``), or ahead of time (``--allow-trace`` with ceilings,
``--allow-save``). What the human is shown is everything that will run:
processes, call-traced functions with their match specs, trace flags,
limits and duration. Where nobody can approve (stdio, a client without
elicitation, no pre-approval) the answer says so, and how to start the
server so someone can. Nothing the assistant asks can exceed the ceilings,
the API's own refusals (dangerous specs) apply, and a save writes only a new
folder inside the one the human configured (``--save-dir``). There is no
code evaluation tool.

Every answer is capped (``cap`` characters, 8,000 by default): a cut answer
says so and gives the cursor of the next page; list tools take ``since`` (a
seq) to return only what is new. Every call, its arguments, and who approved
what and when go to ``session.audit``, which ``s.save`` keeps. Neither the
cookie nor the HTTP token ever appears in an answer or a record.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from ..agent.approval import Ceilings, TraceRequest, now
from ..investigation import Investigation
from ..agent.options import ASSISTANT_CEILINGS, DURATION, LIMITS, TraceLimits
from ..session_base import SessionBase
from ..errors import MicroscopeError
from ..render.elixir import render

__all__ = ["Assistant", "Ceilings", "Proposal", "TraceRequest", "SaveRequest", "Approval",
           "NotAsked", "DEFAULT_CAP", "cell", "now"]

DEFAULT_CAP = 8_000


@dataclass
class SaveRequest:
    path: str            # as the assistant gave it: a folder name inside the save folder
    target: Path         # where it will be written
    reason: str

    def describe(self) -> list[str]:
        return [f"save this session (its events, metadata and audit) to a new folder, "
                f"{self.target}", f"reason: {self.reason or '(none given)'}"]

    def summary(self) -> str:
        return f"saving to {self.target}"


@dataclass
class Proposal:
    id: int
    request: TraceRequest | SaveRequest
    status: str = "pending"              # pending, declined, refused, started, saved
    decided_by: str | None = None        # elicitation, notebook, pre-approval
    decided_at: str | None = None
    message: str = ""
    investigation: Investigation | None = None   # a step of an investigation: it runs it

    @property
    def kind(self) -> str:
        return "trace" if isinstance(self.request, TraceRequest) else "save"

    def describe(self) -> list[str]:
        return self.request.describe()


class Approval(BaseModel):
    """The human's answer to a proposed trace."""

    approve: bool


class NotAsked(BaseModel):
    """No elicitation: the client cannot ask its human."""

    asked: bool = False


class Assistant:
    """The engine behind the MCP tools: a session, ceilings, proposals, an audit."""

    def __init__(self, session: SessionBase, *, ceilings: Ceilings | None = None,
                 cap: int = DEFAULT_CAP, save_dir: str | Path | None = None,
                 allow_save: bool = False, notebook: bool = True):
        self.session = session
        self.ceilings = ceilings          # None: every trace needs the human
        self.cap = cap
        # saves go only into new folders under this one (None: saving is off)
        self.save_dir = Path(save_dir).expanduser().resolve() if save_dir else None
        self.allow_save = allow_save      # the human approved saves ahead of time
        self.notebook = notebook          # a notebook can approve (%beam_mcp approve ID)
        self.proposals: dict[int, Proposal] = {}
        self.investigations: dict[str, Investigation] = {}   # by question
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.recording = None

    # -- audit ---------------------------------------------------------------------

    def record(self, tool: str, arguments: dict[str, Any], outcome: str) -> None:
        self.session.audit.append({"at": now(), "tool": tool, "arguments": _plain(arguments),
                                   "outcome": outcome[:300]})

    # -- paging --------------------------------------------------------------------

    def page(self, text: str, cursor: int = 0) -> str:
        """``text`` from ``cursor`` on, cut at ``cap`` characters on a line end."""
        chunk = text[cursor:cursor + self.cap]
        if cursor + self.cap < len(text):
            cut = chunk.rfind("\n")
            chunk = chunk[:cut] if cut > 0 else chunk
            following = cursor + len(chunk) + (1 if cut > 0 else 0)
            return (chunk + f"\n[cut at {self.cap} characters: {len(text) - following} more; "
                    f"call again with cursor={following}]")
        return chunk

    def table(self, frame: pd.DataFrame, columns: list[str], cursor: int = 0,
              since: int | None = None, seq_column: str | None = None) -> str:
        """Rows as text lines, newest marker last."""
        if since is not None and seq_column:
            frame = frame[frame[seq_column].fillna(-1).astype("int64") > since]
        shown = frame[[c for c in columns if c in frame.columns]]
        lines = [" | ".join(shown.columns)]
        for row in shown.itertuples(index=False):
            lines.append(" | ".join(cell(v) for v in row))
        text = "\n".join(lines) if len(shown) else "(no rows)"
        if seq_column and len(frame):
            newest = int(pd.to_numeric(frame[seq_column], errors="coerce").max())
            text += f"\n[{len(frame)} rows; newest seq {newest}: pass since={newest} for what is new]"
        return self.page(text, cursor)

    # -- traces ----------------------------------------------------------------------

    def default_limits(self) -> TraceLimits:
        """What a proposal takes for a limit it leaves out: the notebook's default,
        tightened to the human's ceilings (else to ``ASSISTANT_CEILINGS``, so an
        assistant's trace always ends by itself)."""
        return TraceLimits().tighter(self.ceilings or ASSISTANT_CEILINGS)

    def request(self, reason: str, processes: list[str] | None, modules: list[str] | None,
                **asked: Any) -> TraceRequest:
        """A trace request from a tool call's arguments (None: left out)."""
        defaults = dataclasses.asdict(self.default_limits())
        return TraceRequest(list(processes or []), list(modules or []), {
            name: defaults[name] if asked.get(name) is None else asked[name]
            for name in defaults}, reason)

    def trace_status(self) -> str:
        """Every proposal's status, then the recording's (events, rate, drops)."""
        lines = [f"proposal {p.id}: {p.status}" + (f" by {p.decided_by}" if p.decided_by else "")
                 + f". {p.message}" for p in self.proposals.values()]
        if self.recording is not None:
            status = self.recording.status()
            lines.append("recording: " + ", ".join(
                f"{k}={cell(v)}" for k, v in status.items() if k not in ("message", "notes")))
            lines += status.get("notes", [])     # sentences, such as no BeamMicroscope there
        lines.append(f"events in the session: {len(self.session.store)}")
        return "\n".join(lines)

    def stop_trace(self) -> str:
        """Stop the trace the assistant started."""
        if self.recording is None or self.recording.state != "running":
            return "no trace of the assistant's is running"
        self.recording.stop()
        return f"stopped; {len(self.session.store)} events in the session"

    def propose(self, request: TraceRequest) -> Proposal:
        with self._lock:
            proposal = Proposal(next(self._ids), request)
            self.proposals[proposal.id] = proposal
        return proposal

    def decide(self, proposal_id: int, approve: bool, by: str) -> Proposal:
        """The human's decision; an approved trace starts at once."""
        proposal = self.proposals.get(proposal_id)
        if proposal is None:
            raise MicroscopeError(f"no trace proposal {proposal_id}; pending ones: "
                                  f"{[p.id for p in self.pending()] or 'none'}")
        if proposal.status != "pending":
            raise MicroscopeError(f"proposal {proposal_id} is already {proposal.status}")
        if proposal.investigation is not None:
            self.resume(proposal, approve, by)
        elif approve:
            self.start(proposal, by)
        else:
            self.decline(proposal, by, f"declined by the human ({by})")
        self.record("decision", {"proposal": proposal_id, "approve": approve, "by": by},
                    proposal.status)
        return proposal

    def decline(self, proposal: Proposal, by: str, message: str) -> None:
        proposal.status, proposal.message = "declined", message
        proposal.decided_by, proposal.decided_at = by, now()

    def waiting(self, proposal: Proposal) -> None:
        """No approval came with the proposal: it waits for the notebook, or, where
        there is none, it is refused with how the human can make approval possible."""
        if self.notebook:
            proposal.message = (f"waiting for the human: in the notebook, %beam_mcp approve "
                                f"{proposal.id} (or deny {proposal.id}); check trace_status")
            return
        node = getattr(self.session, "node", None) or "NODE"
        how = (f"microscope mcp --node {node} --allow-trace {LIMITS['max_events'].ceiling_flag} "
               f"N {DURATION.ceiling_flag} S (pre-approved within those ceilings)"
               if proposal.kind == "trace" else
               f"microscope mcp --node {node} --save-dir DIR --allow-save")
        proposal.status, proposal.decided_at = "refused", now()
        proposal.message = (f"nobody can approve this {proposal.kind} here: this client cannot "
                            "ask its human (no MCP elicitation), and a stdio server has no "
                            f"notebook to approve in. Ask the human to restart the server as "
                            f"`{how}`, or to use a client that supports elicitation")

    def save_target(self, path: str) -> Path:
        """Where a save to ``path`` goes: a new folder inside ``save_dir``, or a
        MicroscopeError saying why not."""
        if self.save_dir is None:
            raise MicroscopeError("saving is off: the human configured no folder for it; they "
                                  "can start the server with --save-dir DIR (in a notebook, "
                                  "s.serve_mcp(save_dir=DIR))")
        target = (self.save_dir / path).resolve() if path else self.save_dir
        if target == self.save_dir or self.save_dir not in target.parents:
            raise MicroscopeError(f"save takes a new folder name inside {self.save_dir}, like "
                                  f"'incident-1', not {path!r}")
        if target.exists():
            raise MicroscopeError(f"{path!r} already exists in {self.save_dir}; pick a new name "
                                  "(the assistant never replaces a recording)")
        return target

    def start(self, proposal: Proposal, by: str) -> None:
        """Carry out an approved proposal (``by``: who approved it): start its trace or
        write its save; the API's own refusals mark it refused."""
        proposal.decided_by, proposal.decided_at = by, now()
        r = proposal.request
        if isinstance(r, SaveRequest):
            try:
                where = self.session.save(self.save_target(r.path))
            except MicroscopeError as exc:
                proposal.status, proposal.message = "refused", str(exc).splitlines()[0]
                return
            proposal.status, proposal.message = "saved", f"saved to {where}, approved by {by}"
            return
        if self.recording is not None and self.recording.state == "running":
            self.recording.stop()
        try:
            self.recording = self.session.trace(*r.processes, modules=r.modules,
                                                **r.limits().trace_options())
        except MicroscopeError as exc:
            proposal.status, proposal.message = "refused", str(exc).splitlines()[0]
            return
        proposal.status = "started"
        proposal.message = f"{r.summary()}, approved by {by}"

    # -- investigations ------------------------------------------------------------

    def investigation(self, question: str) -> Investigation:
        """The investigation of ``question``: the one under way, else a new one,
        run until it ends or a trace waits for approval. Within the human's
        ceilings every trace is pre-approved; otherwise each waits as a proposal."""
        inv = self.investigations.get(question)
        if inv is None or inv.status not in ("running", "waiting"):
            inv = Investigation(self.session, question, approve=self.ceilings,
                                by="pre-approval" if self.ceilings else "elicitation")
            self.investigations[question] = inv
            inv.run()
        return inv

    def step_proposal(self, inv: Investigation) -> Proposal | None:
        """The proposal standing for ``inv``'s waiting trace (made once)."""
        if inv.pending is None:
            return None
        for proposal in self.pending():
            if proposal.investigation is inv:
                return proposal
        proposal = self.propose(inv.pending.step.request)
        proposal.investigation = inv
        self.waiting(proposal)
        if proposal.status == "refused":       # nobody can approve it here
            inv.stop()
        return proposal

    def resume(self, proposal: Proposal, approve: bool, by: str) -> None:
        """The human decided an investigation's step: it runs (or not) and goes on."""
        inv = proposal.investigation
        proposal.decided_by, proposal.decided_at = by, now()
        step = inv.pending.step if inv.pending is not None else None
        inv.by = by
        if approve:
            inv.approve()
            proposal.status = "started"
        else:
            inv.deny()
            proposal.status = "declined"
        proposal.message = (f"{step.decision if step else 'decided'}; {step.showed if step else ''}"
                            f"; the investigation is now {inv.status}")
        self.step_proposal(inv)         # its next trace, if one waits

    def pending(self) -> list[Proposal]:
        return [p for p in self.proposals.values() if p.status == "pending"]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def cell(value: Any) -> str:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, (str, int, bool, pd.Timestamp)):
        text = str(value)
    else:
        text = render(value, "elixir", 200)
    return text.replace("\n", " ")[:300]
