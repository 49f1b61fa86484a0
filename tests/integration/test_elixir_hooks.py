"""The Elixir hooks package (``elixir_hooks/``): its own ExUnit suite, and
``BeamMicroscope.inspect_line`` end to end on the demo node, whose WorkerB
calls it on every update."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import microscope_jupyter as mic
from microscope_jupyter.widgets import SourceView, TimeTravel
from nodes import CLEAN, wait_clean, wait_until

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "elixir_hooks"
WORKER_B = ROOT / "examples" / "apps" / "demo" / "lib" / "demo" / "worker_b.ex"
INSPECT_LINE = next(n for n, text in enumerate(WORKER_B.read_text().splitlines(), 1)
                    if "BeamMicroscope.inspect_line(" in text)


def test_the_package_compiles_and_its_exunit_suite_passes(tmp_path):
    """No agent: a no-op that never evaluates its argument; agent loaded: events
    arrive with binding, function, file and line; the sink comes and goes."""
    env = dict(os.environ, MIX_BUILD_PATH=str(tmp_path / "build"), MIX_ENV="test")
    out = subprocess.run([shutil.which("mix"), "test", "--color=false"], cwd=HOOKS, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 failures" in out.stdout and "warning" not in out.stderr, out.stdout + out.stderr


def test_inspect_line_in_the_demo_lands_in_lines_time_travel_and_the_source(demo, demo_node):
    with demo.trace("Demo.WorkerB"):
        demo.demo.start_updates(10)
        wait_until(lambda: len(demo.lines()) >= 5)
        demo.demo.stop_updates()
    lines = demo.lines("Demo.WorkerB", label="update taken")
    assert len(lines) >= 5
    first = lines.iloc[0]
    assert first["mfa"] == "Demo.WorkerB.handle_info/2"
    assert first["line"] == INSPECT_LINE
    assert first["file"].endswith("lib/demo/worker_b.ex")
    # the binding: the message's n, and count one past the state it started from
    for binding in lines["binding"]:
        assert binding["count"] == binding["state"][mic.Atom("count")] + 1
    assert [b["n"] for b in lines["binding"]] == sorted(b["n"] for b in lines["binding"])
    assert first["text"].startswith("update taken: count = ")
    # each line event sits inside the callback that ran it: after its receive, before its state
    events = demo.events
    for seq in lines["seq"]:
        kinds = events["kind"].iloc[seq - 3:seq + 3].tolist()
        assert "receive" in kinds[:3] and "state" in kinds[4:], kinds

    # recording lines leaves no trace of its own: no send to the agent, no module
    # loading. Up to the last line: the demo's 10th update is a checkpoint that
    # crashes WorkerB (its planted bug), and formatting that crash loads modules.
    sends = events[(events["kind"] == "send") & (events["name"] == "Demo.WorkerB")
                   & (events["seq"] <= lines["seq"].max())]
    assert not sends["text"].str.contains("microscope_line|ensure_loaded").any(), sends["text"]

    # time travel: each process's newest binding at the cursor
    seq = int(lines["seq"].iloc[2])
    snap = demo.time_travel().snapshot_at(seq)
    row = snap[snap["name"] == "Demo.WorkerB"].iloc[0]
    assert row["line"] == f"worker_b.ex:{INSPECT_LINE} {lines['text'].iloc[2]}"
    widget = TimeTravel(demo, cursor=seq)
    shown = next(r for r in widget.snapshot if r["name"] == "Demo.WorkerB")
    assert shown["line"] == row["line"] and row["line"] in widget.static_html()

    # the source view: the line, how often it ran, the newest binding
    view = SourceView(demo, int(first["seq"]))
    assert view.line == INSPECT_LINE and view.function == "handle_info/2"
    assert view.snapshots == {str(INSPECT_LINE): f"{len(lines)}× · {lines['text'].iloc[-1]}"}

    # nothing records any more: the sink is gone (the calls go on, unrecorded)
    observer = mic.attach(demo_node.name, cookie=demo_node.cookie)
    try:
        left = wait_clean(observer)
        assert left["lines"] == [], left
    finally:
        observer.detach()


def test_lines_false_records_none(demo):
    with demo.trace("Demo.WorkerB", lines=False):
        demo.demo.start_updates(10)
        wait_until(lambda: len(demo.states("Demo.WorkerB")) >= 3)
        demo.demo.stop_updates()
    assert len(demo.lines()) == 0
    assert (demo.events["kind"] != "line").all()


def test_a_killed_trace_leaves_no_sink_after_detach(demo_node):
    """A controller killed before its cleanup leaves the sink pointing at a dead
    tracer; the detach that unloads the agent erases it (and, as
    test_agent_safety checks, the call patterns the controller could not undo).
    WorkerB's state hook goes at its next callback."""
    s = mic.attach(demo_node.name, cookie=demo_node.cookie)
    rec = s.trace("Demo.WorkerB")
    sink = s.rpc("persistent_term", "get", [mic.Atom("microscope_line_sink"),
                                            mic.Atom("undefined")])
    assert sink == rec.info["tracer"]
    s.rpc("erlang", "exit", [rec.agent, mic.Atom("kill")])
    s.detach()
    observer = mic.attach(demo_node.name, cookie=demo_node.cookie)
    try:
        observer.rpc("erlang", "send", [mic.Atom("Elixir.Demo.WorkerB"), (mic.Atom("update"), 1)])
        assert wait_clean(observer) == CLEAN
    finally:
        observer.detach()


TALLY = """
Code.require_file(~s(__HOOKS__))
defmodule Tally do
  use GenServer
  require BeamMicroscope
  def init(total), do: {:ok, total}
  def handle_cast({:add, n}, total) do
    total = total + n
    BeamMicroscope.inspect_line("added", binding())
    BeamMicroscope.inspect_line("as a map", %{total: total})
    {:noreply, total}
  end
end
{:ok, _} = GenServer.start(Tally, 0, name: Tally)
"""


def test_each_binding_matches_what_the_node_itself_holds():
    """On an app of our own (not the demo): the binding the last line event
    carries is the GenServer's state as the node reports it (sys:get_state)."""
    from nodes import start_node

    node = start_node("elixir", prefix="tally",
                      eval_src=TALLY.replace("__HOOKS__", str(HOOKS / "lib" / "beam_microscope.ex")))
    try:
        s = mic.attach(node.name, cookie=node.cookie)
        wait_until(lambda: s.rpc("erlang", "whereis", [mic.Atom("Elixir.Tally")])
                   != mic.Atom("undefined"))
        tally = mic.Atom("Elixir.Tally")
        with s.trace("Tally") as rec:
            for n in range(1, 41):
                s.rpc("gen_server", "cast", [tally, (mic.Atom("add"), n)])
            wait_until(lambda: len(s.lines("Tally")) == 80)
        assert rec.status()["notes"] == []          # the package is there: nothing to say
        truth = s.rpc("sys", "get_state", [tally])
        lines = s.lines("Tally", label="added")
        assert truth == 820 == lines["binding"].iloc[-1]["total"]
        assert [b["total"] for b in lines["binding"]] == [n * (n + 1) // 2 for n in range(1, 41)]
        # a value that is no keyword list is the binding's one variable, value
        maps = s.lines("Tally", label="as a map")["binding"]
        assert [b["value"][mic.Atom("total")] for b in maps] == [b["total"] for b in lines["binding"]]
        s.detach()
    finally:
        node.stop()


def test_lines_on_a_node_without_the_package_say_so_once(session, caplog):
    """A plain OTP node has no BeamMicroscope: each trace with lines=True says in
    its status that it records no line events, and how to add the package; the
    log says it once, at INFO (most nodes never use the package)."""
    caplog.set_level(logging.INFO, logger="microscope_jupyter")
    for _ in range(2):
        with session.trace() as rec:
            pass
        assert rec.status()["notes"] == [
            f"{session.node} has no BeamMicroscope module, so lines=True records no line "
            f'events; to record them, add {{:beam_microscope, path: "{HOOKS}"}} to the '
            "app's deps and call BeamMicroscope.inspect_line(label, binding())"]
    told = [r for r in caplog.records if "no BeamMicroscope module" in r.getMessage()]
    assert [r.levelname for r in told] == ["INFO"], told
    with session.trace(lines=False) as rec:
        pass
    assert rec.status()["notes"] == []
