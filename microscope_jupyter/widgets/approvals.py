"""The human's side of an assistant's trace proposals: one row per proposal.

    s.mcp.approvals()        # or %beam_mcp status: Approve / Deny per pending proposal

Each row lists everything the assistant's proposal would run: the processes,
the functions it call-traces with their match specs, the trace flags, the
limits and the duration, and its reason (or, for a save, the folder it
writes). Approve starts the trace (or writes the save) at once (in this session, so the notebook
sees its events too); Deny tells the assistant no. A row that was already
decided shows how, and by whom. Plain ipywidgets: the buttons call back into
the kernel, and the row is rewritten with the outcome.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

__all__ = ["ApprovalPanel"]


class ApprovalPanel(w.VBox):
    """Approve or deny the proposals ``assistant.proposals`` holds."""

    def __init__(self, assistant: Any):
        self.assistant = assistant
        rows = [self._row(p) for p in assistant.proposals.values()]
        if not rows:
            rows = [w.HTML("<i>No trace proposals from an assistant yet.</i>")]
        super().__init__(rows, layout=w.Layout(gap="6px"))
        self.add_class("microscope-approvals")

    def _row(self, proposal: Any) -> w.Widget:
        # Everything that will run: processes, functions and their match specs, flags,
        # limits, duration (or the folder a save writes), as the assistant's client shows it.
        try:
            lines = proposal.describe()
        except Exception as exc:  # noqa: BLE001 - a proposal the API refuses still shows
            lines = [f"cannot be started as asked: {exc}"]
        what = (f"<b>Proposal {proposal.id}</b> ({html.escape(proposal.kind)}):<ul "
                "style='margin:2px 0'>"
                + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>")
        label = w.HTML(what, layout=w.Layout(flex="1 1 auto"))
        outcome = w.HTML(self._outcome(proposal))
        if proposal.status != "pending":
            return w.HBox([label, outcome])
        approve = w.Button(description="Approve", button_style="success", icon="check")
        deny = w.Button(description="Deny", button_style="danger", icon="times")

        def decide(approved: bool) -> None:
            try:
                decided = self.assistant.decide(proposal.id, approved, "notebook")
                outcome.value = self._outcome(decided)
            except Exception as exc:  # noqa: BLE001 - say it on the row, never lose the click
                outcome.value = f"<span style='color:var(--jp-error-color1)'>{html.escape(str(exc))}</span>"
            approve.disabled = deny.disabled = True

        approve.on_click(lambda _: decide(True))
        deny.on_click(lambda _: decide(False))
        return w.HBox([label, approve, deny, outcome])

    @staticmethod
    def _outcome(proposal: Any) -> str:
        if proposal.status == "pending":
            return ""
        by = f" ({html.escape(proposal.decided_by)})" if proposal.decided_by else ""
        return f"<b>{html.escape(proposal.status)}</b>{by}: {html.escape(proposal.message)}"
