"""Starts gone wrong: an init crash loop and a slow init that keeps callers
waiting, from hand-built recordings, with the healthy patterns they resemble."""

from __future__ import annotations

from fake_otp import Scene, crash, pid, row
from microscope_jupyter.analysis.starts import init_crash_loops, name_races, slow_inits
from microscope_jupyter.beam.terms import Atom

KEEPER, SUP, OLD, CLIENT = pid(10), pid(11), pid(12), pid(13)
BADMATCH = crash((Atom("badmatch"), []), "pool", "init", 1)


def loop(scene: Scene, starts: int, every_ms: float = 200.0) -> None:
    scene.exit(OLD, (Atom("shutdown"), Atom("reload")), at=1, name="pool")
    for n in range(starts):
        at = 2 + n * every_ms
        p = pid(100 + n)
        scene.start(KEEPER, p, "pool", at=at)
        scene.ack(p, KEEPER, at=at + 0.1, ok=False, reason=BADMATCH)
        scene.exit(p, BADMATCH, at=at + 0.2, name="pool")


def keeper_scene() -> Scene:
    return Scene([(KEEPER, "keeper"), (OLD, "pool")],
                 [row(KEEPER, "keeper", None), row(OLD, "pool", KEEPER)])


def test_an_init_that_crashes_on_every_start_is_a_loop():
    scene = keeper_scene()
    loop(scene, starts=5)
    causes = init_crash_loops(scene.session().facts)
    assert len(causes) == 1
    text = causes[0].summary
    assert causes[0].processes == ["pool", "keeper"]
    assert text.startswith("pool crashes in its init/1 ({:badmatch, []} in :pool.init/1) on "
                           "every start: 5 starts in 0.8 s, about one every 200 ms")
    assert "keeper starts it again each time and never gives up" in text
    assert f"The last start that worked was {OLD}" in text
    assert 's.trace(modules=["pool:init/1"])' in text


def test_two_failed_starts_are_no_loop():
    scene = keeper_scene()
    loop(scene, starts=2)
    assert init_crash_loops(scene.session().facts) == []


def test_a_starter_that_gave_up_after_them_is_told_elsewhere():
    # a supervisor whose intensity ran out: supervision's cause, not a loop
    scene = keeper_scene()
    loop(scene, starts=4, every_ms=0.5)
    scene.exit(KEEPER, Atom("shutdown"), at=10, name="keeper")
    assert init_crash_loops(scene.session().facts) == []


# -- slow init

DB = pid(20)


def slow_scene(init_ms: float, calls: bool) -> Scene:
    scene = Scene([(SUP, "db_sup"), (CLIENT, "client")],
                  [row(SUP, "db_sup", None, "supervisor"), row(CLIENT, "client", None)])
    scene.start(SUP, DB, "db", at=10)
    if calls:
        scene.call(CLIENT, DB, (Atom("query"), 1), tag=1, at=20)
        scene.at("timeout", CLIENT, 520)               # its 500 ms call timeout fired
    scene.ack(DB, SUP, at=10 + init_ms)
    return scene


def test_a_slow_init_with_callers_waiting_on_it():
    causes = slow_inits(slow_scene(1500, calls=True).session().facts)
    assert len(causes) == 1
    text = causes[0].summary
    assert causes[0].processes == ["db", "db_sup"]
    assert text.startswith("db spent 1,500 ms in its init: db_sup started it")
    assert f"1 call(s) reached db while it was in init and waited; 1 of them timed out " \
           f"after ~500 ms (callers {CLIENT})" in text
    assert "handle_continue" in text


def test_a_slow_init_nobody_waited_on_is_no_finding():
    assert slow_inits(slow_scene(1500, calls=False).session().facts) == []


def test_a_quick_init_is_no_finding():
    assert slow_inits(slow_scene(5, calls=True).session().facts) == []


def test_a_moderately_slow_init_whose_callers_got_their_answer_is_no_finding():
    scene = Scene([(SUP, "db_sup"), (CLIENT, "client")],
                  [row(SUP, "db_sup", None, "supervisor"), row(CLIENT, "client", None)])
    scene.start(SUP, DB, "db", at=10)
    scene.call(CLIENT, DB, (Atom("query"), 1), tag=1, at=20)
    scene.ack(DB, SUP, at=410)
    scene.reply(DB, CLIENT, 1, Atom("ok"), at=411)
    assert slow_inits(scene.session().facts) == []


# -- name races

SESSION = pid(30)


def race_scene(losers: int, reason_for) -> Scene:
    scene = Scene()
    scene.start(pid(40), SESSION, "session_umbrella", at=5)
    scene.ack(SESSION, pid(40), at=5.1)
    for n in range(losers):
        scene.exit(pid(50 + n), reason_for(n), at=6 + n * 0.5)
    return scene


def already(n):
    return crash((Atom("badmatch"), (Atom("error"), (Atom("already_started"), SESSION))),
                 "tenants", "session", 1)


def test_concurrent_starts_of_one_name_all_but_one_crash():
    causes = name_races(race_scene(5, already).session().facts)
    assert len(causes) == 1
    text = causes[0].summary
    assert causes[0].processes[0] == "session_umbrella"
    assert text.startswith(f"5 process(es) crashed on {{error, {{already_started, {SESSION}}}}} "
                           "starting session_umbrella at the same time (2.0 ms apart)")
    assert "check-then-act race" in text and "whereis" in text


def test_other_crashes_are_no_name_race():
    other = crash((Atom("badmatch"), (Atom("error"), Atom("timeout"))), "tenants", "session", 1)
    assert name_races(race_scene(5, lambda n: other).session().facts) == []


def test_tasks_that_never_ack_and_end_normally_are_no_loop():
    """Elixir Tasks (proc_lib processes that never ack) started again and again,
    each ending :normal once its job is done: work, not a failed init."""
    scene = keeper_scene()
    for n in range(12):
        p = pid(200 + n)
        scene.start(KEEPER, p, "pool", at=2 + n * 5)
        scene.exit(p, Atom("normal"), at=4 + n * 5, name="pool")
    assert init_crash_loops(scene.session().facts) == []
