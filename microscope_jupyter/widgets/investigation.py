"""The person's side of an investigation: what it thinks, and the trace it
wants to run, with Approve / Deny / Stop.

    inv = s.investigate("Why is the balance lower than the deposits?")
    inv                      # in a notebook: this view while a trace waits

The view is the investigation's own HTML (hypotheses, the steps taken, the
proposed trace with everything it will run, its predicted cost and limits)
and three buttons. Approve runs the trace in the kernel and scores again;
Deny means that trace is never proposed again; Stop ends the investigation.
After a click the view shows the next proposal or the answer. Plain
ipywidgets, as the assistant's ``ApprovalPanel``: the buttons call back into
the kernel.
"""

from __future__ import annotations

import html
from typing import Any, Callable

import ipywidgets as w

__all__ = ["InvestigationView"]


class InvestigationView(w.VBox):
    """Approve, deny or stop ``investigation``'s waiting trace."""

    def __init__(self, investigation: Any):
        self.investigation = investigation
        self.body = w.HTML(investigation.as_html())
        self.buttons = [w.Button(description=label, button_style=style, tooltip=tip)
                        for label, style, tip in (
                            ("Approve", "success", "run the proposed trace, then score again"),
                            ("Deny", "danger", "never run this trace; propose the next"),
                            ("Stop", "", "end the investigation here"))]
        self.row = w.HBox(self.buttons)
        for button, action in zip(self.buttons, ("approve", "deny", "stop")):
            button.on_click(self._clicked(action))
        super().__init__([self.body, self.row])
        self.add_class("microscope-investigation-view")
        self.refresh()

    def refresh(self) -> None:
        self.body.value = self.investigation.as_html()
        self.row.layout.display = "" if self.investigation.pending is not None else "none"
        for button in self.buttons:
            button.disabled = False

    def _clicked(self, action: str) -> Callable[[Any], None]:
        def on_click(_: Any) -> None:
            for button in self.buttons:
                button.disabled = True
            if action == "approve":
                self.body.value = self.investigation.as_html() + "<p><i>tracing...</i></p>"
            try:
                getattr(self.investigation, action)()
            except Exception as exc:  # noqa: BLE001 - said in the view, never a lost click
                self.refresh()
                self.body.value += (f"<p style='color:var(--jp-error-color1)'>"
                                    f"{html.escape(str(exc).splitlines()[0])}</p>")
                return
            self.refresh()
        return on_click
