"""A linked worker's crash that takes its linker along (no trap_exit), from
hand-built recordings, with the healthy patterns it resembles."""

from __future__ import annotations

from fake_otp import APPLY, Scene, crash, pid, row
from microscope_jupyter.analysis.links import exit_propagation
from microscope_jupyter.beam.terms import Atom

SUP, RUNNER, W1, W2, RUNNER2 = pid(10), pid(11), pid(12), pid(13), pid(14)
BAD = crash((Atom("badmatch"), b"GIF8"), "thumbs", "resize", 3)


def runner_scene(runner_dies: bool, same_reason: bool = True) -> Scene:
    scene = Scene([(SUP, "sup"), (RUNNER, "runner")],
                  [row(SUP, "sup", None, "supervisor"), row(RUNNER, "runner", SUP)])
    jobs = {Atom("completed"): 39, Atom("running"): {}}
    scene.callback(RUNNER, Atom("tick"), at=0.5, took_ms=0.01, before=jobs, after=jobs)
    scene.start(RUNNER, W1, None, at=1, mfa=APPLY)       # spawn_link: spawn, then link
    scene.start(RUNNER, W2, None, at=2, mfa=APPLY)
    scene.exit(W2, BAD, at=3)
    if runner_dies:
        reason = BAD if same_reason else Atom("killed_elsewhere")
        scene.exit(RUNNER, reason, at=3.01, name="runner")
        if same_reason:
            scene.exit(W1, reason, at=3.02)
        scene.start(SUP, RUNNER2, "runner", at=4)
        fresh = {Atom("completed"): 0, Atom("running"): {}}
        scene.callback(RUNNER2, Atom("tick"), at=5, took_ms=0.01, before=fresh, after=fresh)
    else:     # it traps exits: the signal is a message, and it lives on
        scene.at("receive", RUNNER, 3.01, payload=(Atom("EXIT"), W2, BAD))
    return scene


def test_a_linked_workers_crash_kills_a_runner_that_does_not_trap_exits():
    causes = exit_propagation(runner_scene(runner_dies=True).session().facts)
    assert len(causes) == 1
    text = causes[0].summary
    assert causes[0].processes[0] == "runner"
    assert text.startswith(f"{W2} (spawned and linked by runner) crashed: "
                           "{:badmatch, \"GIF8\"} in :thumbs.resize/3")
    assert "killed runner with the same reason" in text
    assert "runner does not trap exits" in text
    assert f"took down 1 more with the same reason: {W1}" in text
    assert f"It was restarted as {RUNNER2}" in text and "completed: 39" in text
    assert "process_flag(trap_exit, true)" in text


def test_a_runner_that_traps_exits_lives_on():
    assert exit_propagation(runner_scene(runner_dies=False).session().facts) == []


def test_linked_processes_dying_of_different_reasons_are_not_one_crash():
    scene = runner_scene(runner_dies=True, same_reason=False)
    assert exit_propagation(scene.session().facts) == []
