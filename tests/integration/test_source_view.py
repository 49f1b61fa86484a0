"""SourceView on real nodes: an Elixir crash at its line with what ran, an
Erlang module without debug info (a note, and still the crash line), a saved
session read from a local checkout."""

from __future__ import annotations

from pathlib import Path

import microscope_jupyter as mic
from microscope_jupyter.widgets import SourceView
from nodes import ERLANG_DIR, load_test_module, wait_until

ROOT = Path(__file__).resolve().parents[2]
WORKER_B = ROOT / "examples" / "apps" / "demo" / "lib" / "demo" / "worker_b.ex"


def def_line(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_demo_crash_at_its_line_with_what_ran(demo, tmp_path):
    rec = demo.trace()
    demo.demo.start_updates(12)
    wait_until(lambda: (demo.findings()["kind"] == "crash").any())
    demo.demo.stop_updates()
    rec.stop()
    crash = demo.findings().query("kind == 'crash'").iloc[0]
    view = SourceView(demo, crash)
    assert view.module == "Demo.WorkerB" and view.function == "handle_info/2"
    assert view.path.endswith("lib/demo/worker_b.ex") and view.note == ""
    assert view.line == def_line(WORKER_B, "def handle_info(")       # function_clause: the head
    assert view.functions["init/1"] == def_line(WORKER_B, "def init(")  # from the debug info
    handled = demo.states("Demo.WorkerB")
    assert view.ran["handle_info/2"][0] == (handled["callback"] == "handle_info").sum() > 0
    assert "crashed in handle_info/2" in view.what
    assert f"{view.line:5} " in view.static_html()
    # saved, and read back where the node is gone: the source comes from a checkout
    demo.save(tmp_path / "rec")
    offline = mic.load(tmp_path / "rec")
    away = SourceView(offline, crash, source_root=ROOT / "examples" / "apps" / "demo")
    assert away.lines == WORKER_B.read_text().splitlines()
    assert "read from the local checkout" in away.note
    assert away.line == view.line           # the crash line is in the stacktrace
    # a module name shows the module; a traced callback event points at its callback
    state_seq = int(handled["seq"].iloc[0])
    at_callback = SourceView(demo, state_seq)
    assert at_callback.function == "handle_info/2" and at_callback.line == view.line


def test_an_erlang_module_without_debug_info_still_shows_its_crash_line(node_factory, tmp_path):
    node = node_factory("otp25", prefix="source")
    with mic.attach(node.name, cookie=node.cookie) as s:
        load_test_module(s, "mic_ledger", tmp_path)      # erlc without +debug_info
        s.rpc("mic_ledger", "start", [])
        rec = s.trace("mic_ledger")
        old = s.eval_erlang("whereis(mic_ledger).")
        s.rpc("mic_ledger", "settle", [0])
        wait_until(lambda: s.eval_erlang("whereis(mic_ledger).") not in (old, mic.Atom("undefined")))
        wait_until(lambda: (s.findings()["kind"] == "crash").any())
        rec.stop()
        crash = s.findings().query("kind == 'crash'").iloc[0]
        view = SourceView(s, crash, source_root=ERLANG_DIR)
        assert view.module == ":mic_ledger" and view.function == "handle_cast/2"
        assert "no debug info" in view.note
        assert view.functions == {}
        source = (ERLANG_DIR / "mic_ledger.erl").read_text().splitlines()
        assert "ok = overdraw(S)" in source[view.line - 1]       # the line from the stacktrace
