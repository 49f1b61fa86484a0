"""ExUnit tests generated from recordings run under `mix test` (ExUnit only):
on the demo, the reproduce test passes on the buggy build and fails on the
fixed one, and the regression test does the opposite."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from microscope_jupyter import Atom
from microscope_jupyter.demo_app import demo_app_dir, hooks_dir
from nodes import wait_until

QUESTION_FIX = ('  def handle_info({:update, n, :checkpoint}, state),\n'
                '    do: handle_info({:update, n}, state)\n\n')


def mix_test(app: Path, test_file: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MIX_ENV="test", MIX_BUILD_PATH=str(app / "_build_test"),
               BEAM_MICROSCOPE_HOOKS=str(hooks_dir()))   # the demo's path dependency
    return subprocess.run(["mix", "test", str(test_file.relative_to(app)), "--no-color"],
                          cwd=app, env=env, capture_output=True, text=True, timeout=300)


def copy_app(source: Path, to: Path) -> Path:
    app = to / source.name
    shutil.copytree(source, app, ignore=shutil.ignore_patterns("_build*", "deps"))
    (app / "test").mkdir(exist_ok=True)
    (app / "test" / "test_helper.exs").write_text("ExUnit.start()\n")
    return app


@pytest.fixture(scope="module")
def demo_tests(demo_node, tmp_path_factory):
    """Both generated tests of the demo's WorkerB, from one recording of the bug."""
    import microscope_jupyter as mic
    from microscope_jupyter.demo_app import DemoControls

    s = mic.attach(demo_node.name, cookie=demo_node.cookie)
    s.demo = DemoControls(s)
    s.demo.reset()
    rec = s.trace()
    s.demo.start_updates(20)
    wait_until(lambda: (s.events["kind"] == "exit").any(), timeout=30)
    rec.stop()
    s.demo.stop_updates()
    # what WorkerB should do with every update, checkpoints included
    count, last = Atom("count"), Atom("last")
    s.expect("Demo.WorkerB", lambda before, message: {**before, count: before[count] + 1,
                                                      last: message[1]})
    tests = {mode: s.exunit("Demo.WorkerB", mode=mode) for mode in ("reproduce", "regression")}
    s.detach()
    return tests


def test_the_generated_source_replays_and_asserts_what_was_recorded(demo_tests):
    source = demo_tests["reproduce"].source
    assert "pid = start_recorded(Demo.WorkerB, %{count: 0, last: nil})" in source
    assert "send(pid, {:update, 1})" in source
    assert "assert %{count: 9, last: 9} = :sys.get_state(pid)" in source
    assert "send(pid, {:update, 10, :checkpoint})" in source
    assert "assert {:function_clause, _} = reason" in source
    assert "Process.sleep" not in source
    # what WorkerB sent while handling an update (Demo.Stats.received/0, a call), traced
    assert 'assert_receive {:trace, ^pid, :send, {:"$gen_call", _, {:update, _}}, _}' in source
    regression = demo_tests["regression"].source
    assert "it must survive it" in regression and "assert_receive {:DOWN" not in regression
    # the expected-state rule given to s.expect says what the checkpoint should leave
    assert "assert %{count: 10, last: 10} = state" in regression


def test_reproduce_passes_on_the_bug_and_regression_fails_until_the_fix(demo_tests, tmp_path):
    buggy = copy_app(demo_app_dir(), tmp_path / "buggy")
    reproduce = demo_tests["reproduce"].write(buggy / "test/")
    regression = demo_tests["regression"].write(buggy / "test/")
    ran = mix_test(buggy, reproduce)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 test, 0 failures" in ran.stdout
    ran = mix_test(buggy, regression)
    assert ran.returncode != 0 and "1 test, 1 failure" in ran.stdout, ran.stdout + ran.stderr
    assert "Demo.WorkerB crashed on {:update, 10, :checkpoint}" in ran.stdout

    fixed = copy_app(demo_app_dir(), tmp_path / "fixed")
    worker_b = fixed / "lib" / "demo" / "worker_b.ex"
    source = worker_b.read_text()
    worker_b.write_text(source.replace("  @impl true\n  def handle_info",
                                       "  @impl true\n" + QUESTION_FIX + "  def handle_info", 1))
    reproduce = demo_tests["reproduce"].write(fixed / "test/")
    regression = demo_tests["regression"].write(fixed / "test/")
    ran = mix_test(fixed, reproduce)
    assert ran.returncode != 0 and "1 test, 1 failure" in ran.stdout, ran.stdout + ran.stderr
    ran = mix_test(fixed, regression)
    assert ran.returncode == 0, ran.stdout + ran.stderr


AWKWARD = Path(__file__).resolve().parents[1] / "apps" / "awkward"


@pytest.fixture(scope="module")
def awkward_recording():
    """The awkward app's scenario, recorded; the node is gone before the tests run."""
    import microscope_jupyter as mic
    from microscope_jupyter.demo_app import boot_app_node

    node = boot_app_node(AWKWARD, "awkward")
    try:
        s = mic.attach(node.name, cookie=node.cookie)
        wait_until(lambda: s.eval_erlang("whereis('Elixir.Awkward.Parser') =/= undefined."))
        rec = s.trace("Awkward.Hub", "Awkward.Cart", "Awkward.Parser")
        s.rpc("Elixir.Awkward", "drive", [])
        wait_until(lambda: (s.events["kind"] == "exit").sum() >= 2)
        rec.stop()
        yield s
        s.detach()
    finally:
        node.stop()


def test_awkward_states_replay_under_mix_test(awkward_recording, tmp_path):
    s = awkward_recording
    app = copy_app(AWKWARD, tmp_path)
    tests = {proc: s.exunit(proc) for proc in ("Awkward.Hub", "Awkward.Cart", "Awkward.Parser")}
    hub, cart, parser = (tests[p].source for p in ("Awkward.Hub", "Awkward.Cart",
                                                    "Awkward.Parser"))
    # a pid stood in for, with what the hub sent it asserted; refs and timestamps as _
    assert "= stand_in(" in hub
    assert ("assert_receive {:trace, ^pid, :send, {:published, :sport, \"goal\"}, ^pid_"
            in hub)
    assert "{:published, :news, <<104, 195, 169, 108, 108, 111, 255, 0>>}" in hub
    assert "since: _" in hub and "{:ok, _} = GenServer.call(pid, {:subscribe, " in hub
    # a struct, its timestamp as _, a charlist as a list, a crash by exception
    assert "%Awkward.Cart{" in cart and "updated_at: _" in cart
    assert "[112, 101, 97, 114]" in cart
    assert "stand_in(" not in cart      # the caller's pid in the crashing call is no state
    assert '{%ArgumentError{message: "empty cart"}, _} = reason' in cart
    # a tuple state with a non-UTF-8 binary, keyword options and a float
    assert "{<<99, 200>>, [mode: :strict, sep: 10], [\"ab\"], 0.75}" in parser
    assert "send(pid, {:data, :eof})" in parser
    assert "{:function_clause, _} = reason" in parser
    for test in tests.values():
        ran = mix_test(app, test.write(app / "test/"))
        assert ran.returncode == 0, test.source + ran.stdout + ran.stderr
        assert "1 test, 0 failures" in ran.stdout
    # regression: the two that crashed must survive, and so fail until fixed
    for proc in ("Awkward.Cart", "Awkward.Parser"):
        ran = mix_test(app, s.exunit(proc, mode="regression").write(app / "test/"))
        assert ran.returncode != 0 and "1 test, 1 failure" in ran.stdout, ran.stdout
        assert f"{proc} crashed on" in ran.stdout


def test_on_a_fixed_build_regression_passes_and_reproduce_fails(awkward_recording, tmp_path):
    """The awkward app with its two crashes fixed (an empty checkout answered
    with an error, the end of the data handled): the tests written from the
    buggy recording swap verdicts. A crash inside a call is made as a caller
    makes it in regression mode, so a fixed build's answer passes."""
    s = awkward_recording
    app = copy_app(AWKWARD, tmp_path)
    cart, parser = app / "lib" / "awkward" / "cart.ex", app / "lib" / "awkward" / "parser.ex"
    cart.write_text(cart.read_text().replace(
        'raise(ArgumentError, "empty cart")', "{:reply, {:error, :empty_cart}, cart}").replace(
        "def handle_call(:checkout, _from, %__MODULE__{items: []})",
        "def handle_call(:checkout, _from, %__MODULE__{items: []} = cart)"))
    parser.write_text(parser.read_text().replace(
        "  @impl true\n  def handle_info({:data, chunk}",
        "  @impl true\n  def handle_info({:data, :eof}, state), do: {:noreply, state}\n\n"
        "  def handle_info({:data, chunk}"))
    for proc in ("Awkward.Cart", "Awkward.Parser"):
        regression = s.exunit(proc, mode="regression")
        if proc == "Awkward.Cart":
            assert "catch_exit" not in regression.source
            assert "GenServer.call(pid, :checkout)" in regression.source
        ran = mix_test(app, regression.write(app / "test/"))
        assert ran.returncode == 0 and "1 test, 0 failures" in ran.stdout, (
            regression.source + ran.stdout + ran.stderr)
        ran = mix_test(app, s.exunit(proc, mode="reproduce").write(app / "test/"))
        assert ran.returncode != 0 and "1 test, 1 failure" in ran.stdout, ran.stdout


# -- a gen_statem: its data, callbacks and event types recorded, and a test of its own kind

STATEM_MODULES = ("mic_statem_fn", "mic_statem_ev")   # state_functions / handle_event_function
STATEM_APP_MIX = """defmodule StatemApp.MixProject do
  use Mix.Project
  def project, do: [app: :statem_app, version: "0.1.0", elixir: "~> 1.14", deps: []]
  def application, do: [extra_applications: [:logger]]
end
"""


def _drive_statem(s, observer, name):
    """The scenario, with the truth after each step read by a second node:
    {state, data} from sys:get_state. A step whose event is the machine's own
    timeout is waited for until the state changes."""
    M = Atom(name)
    truth = []

    def now():
        return observer.rpc("sys", "get_state", [M])

    def after(change):
        change()
        truth.append(now())

    def waited(condition):
        wait_until(lambda: condition(now()), timeout=10)
        truth.append(now())

    after(lambda: s.rpc("gen_statem", "cast", [M, (Atom("note"), Atom("a"))]))
    after(lambda: s.rpc("gen_statem", "call", [M, (Atom("job"), 1)]))
    after(lambda: s.rpc("gen_statem", "cast", [M, (Atom("note"), Atom("b"))]))   # postponed
    after(lambda: s.rpc("gen_statem", "call", [M, Atom("status")]))
    waited(lambda st: st[1][Atom("retries")] == 1)             # {timeout, retry}
    waited(lambda st: st[0] == Atom("idle"))                    # state_timeout, enter, the retried note
    after(lambda: s.eval_erlang(f"{name} ! ping."))
    waited(lambda st: st[1][Atom("ticks")] == 1)                # the event timeout
    return truth


@pytest.fixture(scope="module", params=["otp25", "otp28"])
def statem_recording(request, node_factory, tmp_path_factory):
    """Both machines driven under trace on a real node; the truth from a second node."""
    import microscope_jupyter as mic
    from nodes import compile_erlang, load_module, ERLANG_DIR

    node = node_factory(request.param, prefix="fsm")
    out = tmp_path_factory.mktemp("statem")
    s = mic.attach(node.name, cookie=node.cookie)
    observer = mic.attach(node.name, cookie=node.cookie)
    try:
        for name in STATEM_MODULES:
            load_module(s, compile_erlang(ERLANG_DIR / f"{name}.erl", out))
            s.rpc(name, "start", [Atom(name)])
        rec = s.trace(*STATEM_MODULES)
        assert rec.info["hooked"] == 2
        truths = {name: _drive_statem(s, observer, name) for name in STATEM_MODULES}
        rec.stop()
        # nothing of ours is left: patterns, the call flag
        left = observer.eval_erlang(
            "[{M, F, A} || M <- Ms, {F, A} <- M:module_info(exports),"
            " erlang:trace_info({M, F, A}, traced) =/= {traced, false}]"
            " ++ [P || M <- Ms, P <- [whereis(M)], erlang:trace_info(P, flags) =/= {flags, []}].",
            Ms=[Atom(m) for m in STATEM_MODULES])
        assert left == []
        saved = out / "recording"
        s.save(saved)
        yield mic.load(saved), truths
    finally:
        observer.detach()
        s.detach()
        node.stop()


def test_a_gen_statem_recording_holds_its_data_callbacks_and_event_types(statem_recording):
    s, truths = statem_recording
    for name, callbacks in (("mic_statem_fn", ["idle/3", "idle/3", "busy/3", "busy/3", "busy/3",
                                               "busy/3", "idle/3", "idle/3", "idle/3"]),
                            ("mic_statem_ev", ["handle_event/4"] * 9)):
        states = s.states(name)
        assert list(states["callback"]) == callbacks, name
        assert list(states["event_type"].map(lambda t: t if not isinstance(t, tuple)
                                             or t[0] != Atom("call") else Atom("call"))) == [
            Atom("cast"), Atom("call"), Atom("cast"), Atom("call"), (Atom("timeout"), Atom("retry")),
            Atom("state_timeout"), Atom("cast"), Atom("info"), Atom("timeout")]
        assert list(states["postponed"]) == [False, False, True] + [False] * 6
        assert list(states["reply"])[:4] == [None, (Atom("ok"), 1), None, (Atom("busy"), 1)]
        # what the process held after each step, as a second node read it: the
        # state_timeout's step and the postponed note retried after it are one reading
        recorded = [(a, d) for a, d in zip(states["after"], states["data_after"])]
        assert recorded[:5] + recorded[6:] == [tuple(t) for t in truths[name]], name
        assert states["data_after"].iloc[5][Atom("enters")] == 2   # the enter call's work


def test_a_gen_statem_test_replays_under_mix_test_and_catches_a_change(statem_recording,
                                                                        tmp_path):
    s, _ = statem_recording
    app = tmp_path / "statem_app"
    (app / "src").mkdir(parents=True)
    (app / "test").mkdir()
    (app / "mix.exs").write_text(STATEM_APP_MIX)
    (app / "test" / "test_helper.exs").write_text("ExUnit.start()\n")
    from nodes import ERLANG_DIR
    for name in STATEM_MODULES:
        shutil.copy(ERLANG_DIR / f"{name}.erl", app / "src")
    tests = {(name, mode): s.exunit(name, mode=mode) for name in STATEM_MODULES
             for mode in ("reproduce", "regression")}
    source = tests["mic_statem_fn", "reproduce"].source
    assert "pid = start_recorded(:mic_statem_fn, :idle, %{" in source
    assert "after 200 ms: the test waits for it" in source
    assert "{:timeout, :retry} (200 ms)" in source and len(source.splitlines()) < 200
    for test in tests.values():
        ran = mix_test(app, test.write(app / "test/"))
        assert ran.returncode == 0 and "1 test, 0 failures" in ran.stdout, (
            test.source + ran.stdout + ran.stderr)
    # a changed machine (a retry counts twice) fails the test written from the recording
    for name in STATEM_MODULES:
        src = app / "src" / f"{name}.erl"
        src.write_text(src.read_text().replace("retries := R + 1", "retries := R + 2"))
        ran = mix_test(app, tests[name, "reproduce"].write(app / "test/"))
        assert ran.returncode != 0 and "1 test, 1 failure" in ran.stdout, ran.stdout + ran.stderr
        assert "not in the recorded state" in ran.stdout
