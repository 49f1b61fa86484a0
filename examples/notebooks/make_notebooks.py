"""Write, execute and tidy the example notebooks.

    .venv/bin/python examples/notebooks/make_notebooks.py

The notebooks are generated from the cell lists below so they stay small
and reviewable: after execution the widget state (which would embed every
ESM bundle) is dropped, and outputs of cells marked NBVAL_IGNORE_OUTPUT
(live widgets, whose size depends on timing) are cleared. nbval then checks
every other output against a fresh run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

QUICKSTART = [
    ("markdown", """# BEAM Microscope quickstart: why isn't WorkerB receiving all updates?

The bundled demo app runs the seed scenario: **WorkerA** sends a counter to **WorkerB** on every
tick, under a supervision tree. Someone reports that WorkerB does not get all the updates.
We attach to the running node, record what happens, and let the recording answer."""),
    ("code", """%load_ext microscope
import microscope_jupyter as mic
import pandas as pd
pd.set_option("display.max_colwidth", 80)"""),
    ("markdown", "## 1. Attach\n`%beam_attach --demo` boots the demo app as a local node and attaches as a hidden node (no code is loaded from disk on the node; the cookie never shows up in the notebook)."),
    ("code", """s = %beam_attach --demo
info = s.node_info()
print("attached:", s.attached, "| OTP", info["otp_release"], "| Elixir", info["elixir_version"][:4])"""),
    ("markdown", "## 2. Trace\n`%%trace` runs the cell's Elixir code on the node under trace and draws its sequence diagram: hover an arrow for the full payload, click it to select it in Python, ctrl+wheel to zoom, drag to pan."),
    ("code", """%%trace --for 300ms
# NBVAL_IGNORE_OUTPUT
Demo.start_updates(20)
Process.sleep(600)
Demo.stop_updates()"""),
    ("markdown", "## 3. The messages\nEvery send joined to its receive. The first ten updates arrive:"),
    ("code", """messages = s.messages()
updates = messages[messages["text"].str.startswith("{:update", na=False)].reset_index(drop=True)
updates[["sender_name", "receiver_name", "text", "status"]].head(10)"""),
    ("code", """first_receiver = updates["receiver"].iloc[0]
later = updates.iloc[10:]
print("updates after the checkpoint:", "many" if len(later) >= 5 else len(later))
print("all of them sent to the first WorkerB pid:", (later["receiver"] == first_receiver).all())
print("some of them lost:", "lost" in set(later["status"]))"""),
    ("markdown", "## 4. The sequence diagram\nOnly WorkerA and WorkerB, filtered to the updates (an Elixir pattern):"),
    ("code", """# NBVAL_IGNORE_OUTPUT
seq = mic.widgets.SequenceDiagram(s, procs=["Demo.WorkerA", "Demo.WorkerB"])
seq.filter_pattern("{:update, _}")
seq"""),
    ("code", """print(sorted({lane["label"] for lane in seq.lanes}))"""),
    ("markdown", "## 5. WorkerB's state, transition by transition"),
    ("code", """s.query.state_timeline("Demo.WorkerB")[["callback", "message_text", "changes"]]"""),
    ("markdown", "## 6. Time travel to the moment the updates go missing\nThe slider steps through every event (arrow keys work too); it follows the sequence diagram's cursor."),
    ("code", """events = s.events
crash = events[(events["kind"] == "exit") & (events["name"] == "Demo.WorkerB")].iloc[0]
tt = s.time_travel()
before = tt.snapshot_at(int(crash["seq"]) - 1).set_index("name")
print("WorkerB just before:", before.loc["Demo.WorkerB", "state_text"])
print("first message in its mailbox:", mic.render.elixir.to_elixir(before.loc["Demo.WorkerB", "mailbox"][0]))
print("it dies with:", crash["text"][:60])"""),
    ("code", """# the moment the supervisor's new WorkerB takes the name
restarted = events[(events["kind"] == "register") & (events["peer"] == "Demo.WorkerB")
                   & (events["seq"] > crash["seq"])].iloc[0]
after = tt.snapshot_at(int(restarted["seq"]))
new_b = after[(after["name"] == "Demo.WorkerB") & after["alive"]]
a_state = after.set_index("name").loc["Demo.WorkerA", "state"]
print("a new WorkerB is running:", len(new_b) == 1 and new_b["pid"].iloc[0] != first_receiver)
print("WorkerA still targets the old pid:", str(a_state[mic.Atom("worker_b")]) == first_receiver)
print("WorkerA monitors:", after.set_index("name").loc["Demo.WorkerA", "monitors"] or "nothing")"""),
    ("code", """# NBVAL_IGNORE_OUTPUT
mic.widgets.TimeTravel(s, cursor=int(crash["seq"]) - 1).link(seq)"""),
    ("markdown", "## 7. The supervision tree and the timeline\nThe tree is read live from the node (search, collapse, colour by mailbox or memory; click a process to select it). The timeline shows lifetimes, callbacks and mailbox length."),
    ("code", """# NBVAL_IGNORE_OUTPUT
tree = mic.widgets.SupervisionTree(s)
tree"""),
    ("code", """# NBVAL_IGNORE_OUTPUT
mic.widgets.Timeline(s)"""),
    ("markdown", "## 8. The cause"),
    ("code", """findings = s.findings()
findings[["kind", "severity", "name"]]"""),
    ("markdown", "Each finding says in plain words what went wrong, and lists the events that show it (`evidence`, event seqs):"),
    ("code", """unhandled = findings[findings["kind"] == "unhandled_message"].iloc[0]
print(unhandled["summary"])
s.events.loc[unhandled["evidence"], ["kind", "name", "text"]].reset_index(drop=True)"""),
    ("markdown", """Two bugs together:

1. **WorkerB crashes** on `{:update, 10, :checkpoint}`: every tenth update is a checkpoint tuple, and
   `Demo.WorkerB.handle_info/2` has no clause for it (`function_clause`). The supervisor restarts it.
2. **WorkerA never notices**: it looked WorkerB's pid up once in `init/1` and keeps sending to that
   dead pid. Sends to a dead pid vanish silently, so every update after the first crash is lost.

Fix: handle the checkpoint in WorkerB, and send to the registered name (`send(Demo.WorkerB, ...)`)
or monitor WorkerB and look it up again when it restarts."""),
    ("markdown", """## 9. Ask why
`s.explain(question)` joins the findings into causes and answers in one paragraph: what happened,
why, and what to do, with the evidence (event seqs) behind each cause. `%beam_explain` does the same."""),
    ("code", """e = s.explain("Why isn't WorkerB receiving all updates from WorkerA?")
print(e.text)"""),
    ("code", """e.causes[["rank", "kind", "confidence", "processes"]]"""),
    ("markdown", """`s.dashboard()` draws the metrics (`s.metrics()`: the node's mailbox counts, callback
latency by message shape, GC pauses) with the findings marked; it also shows in an exported HTML copy."""),
    ("code", """# NBVAL_IGNORE_OUTPUT
s.dashboard(["Demo.WorkerA", "Demo.WorkerB"])"""),
    ("code", """s.save("quickstart-recording")   # an offline copy: mic.load(...) answers the same queries
%beam_detach"""),
]


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in cells:
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(make(source))
    return nb


def tidy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code" and "NBVAL_IGNORE_OUTPUT" in cell.source:
            cell.outputs = []
            cell.execution_count = None
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def main() -> None:
    out = HERE / "01_quickstart.ipynb"
    nb = execute(build(QUICKSTART), HERE)
    nbformat.write(tidy(nb), out)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
