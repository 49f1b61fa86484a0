"""mic.compare on real recordings: the demo's bug against its fixed build
names what disappeared and the changed modules; two recordings of the same
build show no significant difference."""

from __future__ import annotations

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


def test_a_busy_app_of_short_lived_processes_is_the_same_as_itself(tmp_path):
    """Thousands of Task processes a second, each with a new pid in each run:
    two recordings of the same build show no significant difference."""
    from idioms import run_idiom

    for run in ("a", "b"):
        result = run_idiom("task_await", "otp28", seconds=2.0, save_to=tmp_path / run)
        assert not result.errors, result.errors
        assert result.processes > 500          # short-lived: new pids in each run
    diff = mic.compare(mic.load(tmp_path / "a"), mic.load(tmp_path / "b"))
    assert diff.significant().empty, diff.summary()
