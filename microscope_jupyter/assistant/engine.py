"""The engine behind the MCP tools for AI assistants over the same engine: ``microscope mcp`` and ``s.serve_mcp()``.

    server = build_server(Assistant(session, ceilings=Ceilings(max_events=50_000)))
    server.run()                        # stdio: `microscope mcp --node app@host`
    handle = s.serve_mcp()              # streamable HTTP on 127.0.0.1 with a token

The assistant reads what the session holds (processes, findings, messages,
state timelines, time travel, explanations, ExUnit tests) and may *propose*
a trace. A proposal starts nothing by itself: the human approves it through
MCP elicitation when the client supports it, in the notebook
(``%beam_mcp approve ID``), or ahead of time with ceilings given when the
server started (``--allow-trace``). Nothing the assistant asks can exceed
those ceilings, and the API's own refusals (dangerous specs) apply. There is
no code evaluation tool.

Every answer is capped (``cap`` characters, 8,000 by default): a cut answer
says so and gives the cursor of the next page; list tools take ``since`` (a
seq) to return only what is new. Every call, its arguments, and who approved
what and when go to ``session.audit``, which ``s.save`` keeps. Neither the
cookie nor the HTTP token ever appears in an answer or a record.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from ..analysis.recorded import SessionBase
from ..errors import MicroscopeError
from ..render.elixir import render

__all__ = ["Assistant", "Ceilings", "Proposal", "TraceRequest", "Approval", "NotAsked",
           "DEFAULT_CAP", "cell", "now"]

DEFAULT_CAP = 8_000


@dataclass(frozen=True)
class Ceilings:
    """The most a trace the assistant starts may take; set by the human."""

    max_events: int = 100_000
    max_rate: int = 50_000
    duration_s: float = 30.0
    payload_limit: int = 4096

    def refuse(self, spec: "TraceRequest") -> str | None:
        """Why ``spec`` exceeds these ceilings, or None."""
        for name, limit in (("max_events", self.max_events), ("max_rate", self.max_rate),
                            ("duration_s", self.duration_s),
                            ("payload_limit", self.payload_limit)):
            value = getattr(spec, name)
            if value > limit:
                return (f"{name}={value} is above the ceiling of {limit} the human set; "
                        f"propose {name}<={limit}")
        return None


@dataclass
class TraceRequest:
    processes: list[str]
    modules: list[str]
    duration_s: float
    max_events: int
    max_rate: int
    payload_limit: int
    reason: str


@dataclass
class Proposal:
    id: int
    request: TraceRequest
    status: str = "pending"              # pending, approved, declined, refused, started
    decided_by: str | None = None        # elicitation, notebook, pre-approval
    decided_at: str | None = None
    message: str = ""


class Approval(BaseModel):
    """The human's answer to a proposed trace."""

    approve: bool


class NotAsked(BaseModel):
    """No elicitation: the client cannot ask its human."""

    asked: bool = False


class Assistant:
    """The engine behind the MCP tools: a session, ceilings, proposals, an audit."""

    def __init__(self, session: SessionBase, *, ceilings: Ceilings | None = None,
                 cap: int = DEFAULT_CAP):
        self.session = session
        self.ceilings = ceilings          # None: every trace needs the human
        self.cap = cap
        self.proposals: dict[int, Proposal] = {}
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
        if approve:
            self.start(proposal, by)
        else:
            self.decline(proposal, by, f"declined by the human ({by})")
        self.record("decision", {"proposal": proposal_id, "approve": approve, "by": by},
                    proposal.status)
        return proposal

    def decline(self, proposal: Proposal, by: str, message: str) -> None:
        proposal.status, proposal.message = "declined", message
        proposal.decided_by, proposal.decided_at = by, now()

    def start(self, proposal: Proposal, by: str) -> None:
        """Start an approved trace (``by``: who approved it); the API's own
        refusals mark it refused."""
        proposal.decided_by, proposal.decided_at = by, now()
        r = proposal.request
        if self.recording is not None and self.recording.state == "running":
            self.recording.stop()
        try:
            self.recording = self.session.trace(
                *r.processes, modules=r.modules, duration=r.duration_s, max_events=r.max_events,
                max_rate=r.max_rate, payload_limit=r.payload_limit)
        except MicroscopeError as exc:
            proposal.status, proposal.message = "refused", str(exc).splitlines()[0]
            return
        proposal.status = "started"
        proposal.message = (f"tracing {', '.join(r.processes) or 'every process'} for "
                            f"{r.duration_s:g} s (at most {r.max_events} events), approved by {by}")

    def pending(self) -> list[Proposal]:
        return [p for p in self.proposals.values() if p.status == "pending"]


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


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
