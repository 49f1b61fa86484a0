"""mic.compare on real recordings: the demo's bug against its fixed build
names what disappeared and the changed modules; two recordings of the same
build (the demo, and a busy app of short-lived processes) show no significant
difference; the busy app's changed build shows its slower handler by name and
its added message by shape."""

from __future__ import annotations

import re
import time

import pytest

import microscope_jupyter as mic
from nodes import wait_until


def record(session, tmp_path, label):
    rec = session.trace()
    session.demo.start_updates(20)
    wait_until(lambda: (session.events["kind"] == "state").sum() >= 45, timeout=30)
    rec.stop()
    session.demo.stop_updates()
    return mic.load(session.save(tmp_path / label))


@pytest.fixture(scope="module")
def recordings(demo_node, tmp_path_factory):
    from microscope_jupyter.demo_app import DemoControls

    tmp = tmp_path_factory.mktemp("compare")
    out = {}
    s = mic.attach(demo_node.name, cookie=demo_node.cookie)
    s.demo = DemoControls(s)
    for label in ("buggy", "buggy_again"):
        s.demo.reset()
        out[label] = record(s, tmp, label)
    s.detach()
    fixed = mic.demo(fixed=True)
    try:
        out["fixed"] = record(fixed, tmp, "fixed")
    finally:
        fixed.detach()
    return out


def test_versions_hold_md5_application_and_commit(recordings):
    versions = recordings["buggy"].versions().set_index("module")
    worker_b = versions.loc["Demo.WorkerB"]
    assert len(worker_b["md5"]) == 32 and worker_b["application"] == "demo"
    assert worker_b["vsn"] == "0.1.0" and worker_b["source"].endswith("lib/demo/worker_b.ex")
    assert worker_b["commit"] and len(worker_b["commit"].split("+")[0]) == 40   # the app's checkout


def test_the_fix_makes_the_loss_and_the_crash_disappear(recordings):
    diff = mic.compare(recordings["buggy"], recordings["fixed"])
    significant = diff.significant()
    gone = set(significant.loc[significant["change"] == "gone", "what"])
    assert {"lost_message (Demo.WorkerB)", "crash (Demo.WorkerB)"} <= gone
    assert any(w.startswith("stale_pid") for w in gone)
    changed = significant[significant["aspect"] == "module"]
    assert {"Demo.WorkerA", "Demo.WorkerB"} <= set(changed["what"])
    assert "not in a git checkout" in changed["change"].iloc[0]    # the fixed copy is in the cache
    assert "lost_message (Demo.WorkerB): gone" in diff._repr_markdown_()
    # WorkerB now handles every update: more transitions than before
    transitions = diff.frame().query("aspect == 'transitions'")
    row = transitions[transitions["what"] == "Demo.WorkerB handle_info of {:update, _}"]
    assert len(row) == 1 and row["after"].iloc[0] > row["before"].iloc[0]


def test_two_recordings_of_the_same_build_do_not_differ_significantly(recordings):
    diff = mic.compare(recordings["buggy"], recordings["buggy_again"])
    assert diff.significant().empty, diff.summary()
    assert diff.summary()[0].startswith("No significant difference")


# The busy app: idiom_task_await (a search server fanning each query out to
# three short-lived tasks, a plain process awaiting one task every 4 ms:
# ~850 new processes a second). Its changed build makes the index's lookup
# slower and has one backend send the index a message the first never sent.
BUSY = "idiom_task_await"
CHANGES = {
    "handle_call({lookup, Q}, _From, Index) ->\n":
        "handle_call({lookup, Q}, _From, Index) ->\n    timer:sleep(2),\n",
    "backend(tags, Q) -> integer_to_binary(Q).":
        "backend(tags, Q) -> ?INDEX ! {tagged, Q}, integer_to_binary(Q).",
}


def record_busy(beam, path, seconds=2.0):
    """A fresh node runs ``beam`` (the busy app), warmed up, traced ``seconds``."""
    from idioms import _warm_up
    from nodes import load_module, start_node

    node = start_node("otp25", prefix="cmp")
    try:
        s = mic.attach(node.name, cookie=node.cookie)
        wait_until(lambda: s.eval_erlang("init:get_status().") == (mic.Atom("started"),) * 2)
        load_module(s, beam)
        assert s.rpc(BUSY, "start", []) == mic.Atom("ok")
        _warm_up(s, BUSY)
        rec = s.trace()
        time.sleep(seconds)
        rec.stop()
        s.rpc(BUSY, "stop", [])
        s.save(path)
        s.detach()
    finally:
        node.stop()
    return mic.load(path)


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    from idioms import IDIOM_DIR
    from nodes import compile_erlang

    tmp = tmp_path_factory.mktemp("busy")
    source = (IDIOM_DIR / f"{BUSY}.erl").read_text()
    changed = source
    for was, now in CHANGES.items():
        assert was in changed
        changed = changed.replace(was, now)
    builds = {}
    for label, text in (("built", source), ("changed", changed)):
        (tmp / label).mkdir()
        (tmp / label / f"{BUSY}.erl").write_text(text)
        builds[label] = compile_erlang(tmp / label / f"{BUSY}.erl", tmp / label)
    return {"a": record_busy(builds["built"], tmp / "a"),
            "b": record_busy(builds["built"], tmp / "b"),
            "changed": record_busy(builds["changed"], tmp / "c")}


def test_a_busy_app_of_short_lived_processes_is_the_same_as_itself(busy):
    """Hundreds of Task processes a second, each with a new pid in each run:
    two recordings of the same build show no significant difference."""
    for run in ("a", "b"):
        spawned = (busy[run].events["kind"] == "spawn").sum()
        assert spawned > 1000, spawned            # short-lived: new pids in each run
    diff = mic.compare(busy["a"], busy["b"])
    assert diff.significant().empty, diff.summary()
    frame = diff.frame()
    assert not frame["what"].str.contains(r"<\d+\.\d+\.\d+>").any(), frame   # no pid
    assert not re.search(r"\binf\b", frame.to_string())


def test_a_changed_build_shows_the_change_by_name_and_shape(busy):
    diff = mic.compare(busy["a"], busy["changed"])
    significant = diff.significant()
    by = {(a, w): c for a, w, c in zip(significant["aspect"], significant["what"],
                                        significant["change"])}
    assert by[("module", BUSY)].startswith("changed"), by
    slower = by[("latency", "idiom_task_await_index: handle_call of {:lookup, _}")]
    assert "ms (median) against" in slower and slower.endswith("x"), slower
    added = [w for a, w in by if a == "rate" and w.endswith("-> idiom_task_await_index {:tagged, _}")]
    assert added == ["a child of idiom_task_await_search -> idiom_task_await_index {:tagged, _}"], by
    assert "started: none in the baseline" in by[("rate", added[0])]
    transitions = diff.frame().query("aspect == 'transitions'").set_index("what")["change"]
    assert transitions["idiom_task_await_index handle_info of {:tagged, _}"] == "new"
    assert not re.search(r"\binf\b", diff.frame().to_string())
