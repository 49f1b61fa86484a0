"""Supervisors that gave up (restart intensity) and one_for_one left a sibling
bound to a dead child: from hand-built recordings, with the healthy patterns
they resemble."""

from __future__ import annotations

from fake_otp import Scene, crash, pid, row
from microscope_jupyter.analysis.supervision import gave_up, wrong_strategy
from microscope_jupyter.beam.terms import Atom

TOP, SUP, W1, W2, DB = pid(10), pid(11), pid(12), pid(13), pid(14)
SHUTDOWN = Atom("shutdown")
NOPROC = crash((Atom("badmatch"), (Atom("error"), Atom("noproc"))), "repo", "conn_init", 1)


def pool(scene: Scene, restarts: int, then_quit: bool) -> None:
    """W1 crashes; SUP restarts it ``restarts`` times and each new one crashes
    in its start; then SUP shuts down with W2 (or keeps the last one)."""
    scene.exit(DB, Atom("normal"), at=1, name="db")
    scene.exit(W1, NOPROC, at=5, name="conn_1")
    at = 5.0
    for n in range(restarts):
        new = pid(100 + n)
        scene.start(SUP, new, "conn_1", at=at + 0.1)
        at += 0.2
        last_ok = not then_quit and n == restarts - 1
        if last_ok:
            scene.ack(new, SUP, at=at)
        else:
            scene.exit(new, NOPROC, at=at, name="conn_1")
    if then_quit:
        scene.exit(W2, SHUTDOWN, at=at + 0.1, name="conn_2")
        scene.exit(SUP, SHUTDOWN, at=at + 0.2, name="pool_sup")


def tree() -> list:
    return [row(TOP, "top", None, "supervisor"), row(SUP, "pool_sup", TOP, "supervisor"),
            row(W1, "conn_1", SUP), row(W2, "conn_2", SUP), row(DB, "db", None)]


NAMES = [(TOP, "top"), (SUP, "pool_sup"), (W1, "conn_1"), (W2, "conn_2"), (DB, "db")]


def test_a_supervisor_that_used_up_its_intensity_gave_up():
    scene = Scene(NAMES, tree())
    pool(scene, restarts=3, then_quit=True)
    causes = gave_up(scene.session().facts)
    assert len(causes) == 1
    text = causes[0].summary
    assert causes[0].processes[0] == "pool_sup"
    assert text.startswith("pool_sup reached its restart intensity and gave up: its children "
                           "failed 4 times")
    assert "it restarted them 3 time(s)" in text and "intensity is likely 3" in text
    assert "crashed during its start" in text and "noproc" in text
    assert "Gone for good, nothing restarted them: pool_sup, conn_1, conn_2" in text
    # the crashes say noproc, and db went just before: the likely dependency
    assert "most likely depend on db" in text


def test_the_parent_that_gave_up_after_it_is_one_chain():
    scene = Scene(NAMES, tree())
    pool(scene, restarts=3, then_quit=True)
    again = pid(200)
    scene.start(TOP, again, "pool_sup", at=7)
    scene.start(again, pid(201), "conn_1", at=7.1)
    scene.exit(pid(201), NOPROC, at=7.2, name="conn_1")
    scene.ack(again, TOP, at=7.3, ok=False, reason=Atom("failed"))
    scene.exit(again, (SHUTDOWN, Atom("failed_to_start_child")), at=7.4, name="pool_sup")
    scene.exit(TOP, SHUTDOWN, at=7.5, name="top")
    causes = gave_up(scene.session().facts)
    assert [c.processes for c in causes] == [["pool_sup", "top"]]
    assert "Its parent top restarted it 1 time(s); it failed to start" in causes[0].summary
    assert "top gave up too" in causes[0].summary


def test_a_supervisor_its_parent_stops_did_not_give_up():
    # an ordered shutdown: the children stop first, no failure before it
    scene = Scene(NAMES, tree())
    scene.exit(W1, SHUTDOWN, at=1, name="conn_1")
    scene.exit(W2, SHUTDOWN, at=2, name="conn_2")
    scene.exit(SUP, SHUTDOWN, at=3, name="pool_sup")
    assert gave_up(scene.session().facts) == []


def test_a_crash_it_restarted_is_no_giving_up_when_it_is_stopped_later():
    scene = Scene(NAMES, tree())
    pool(scene, restarts=1, then_quit=False)      # one crash, restarted, the new one runs
    scene.exit(pid(100), SHUTDOWN, at=20, name="conn_1")
    scene.exit(W2, SHUTDOWN, at=21, name="conn_2")
    scene.exit(SUP, SHUTDOWN, at=22, name="pool_sup")
    assert gave_up(scene.session().facts) == []


# -- wrong strategy

FEED, INDEXER, FEED2 = pid(21), pid(22), pid(23)
BADARG = crash(Atom("badarg"), "erlang", "binary_to_term", 1)


def strategy_scene(holds_pid: bool, sibling_restarted: bool = False) -> Scene:
    scene = Scene([(SUP, "sup"), (FEED, "feed"), (INDEXER, "indexer")],
                  [row(SUP, "sup", None, "supervisor"), row(FEED, "feed", SUP),
                   row(INDEXER, "indexer", SUP)])
    state = {Atom("feed"): FEED if holds_pid else Atom("feed"), Atom("indexed"): 41}
    events = (Atom("events"), [1, 2])
    scene.at("send", FEED, 1, peer=INDEXER, payload=events)
    scene.at("receive", INDEXER, 1.1, payload=events)
    scene.callback(INDEXER, events, at=1.2, took_ms=0.01, before=state, after=state)
    scene.exit(FEED, BADARG, at=5, name="feed")
    scene.start(SUP, FEED2, "feed", at=5.1)
    scene.ack(FEED2, SUP, at=5.2)
    if sibling_restarted:     # rest_for_one: the indexer goes and comes back too
        scene.exit(INDEXER, SHUTDOWN, at=5.15, name="indexer")
    return scene


def test_a_sibling_left_holding_the_dead_childs_pid():
    causes = wrong_strategy(strategy_scene(holds_pid=True).session().facts)
    assert len(causes) == 1
    text = causes[0].summary
    assert causes[0].processes[0] == "sup"
    assert text.startswith("sup restarted feed alone after it crashed")
    assert f"still holds the old pid {FEED} in its state (.feed)" in text
    assert "one_for_one" in text and "rest_for_one" in text


def test_a_sibling_that_looks_the_child_up_by_name_is_fine():
    assert wrong_strategy(strategy_scene(holds_pid=False).session().facts) == []


def test_a_sibling_restarted_with_it_is_fine():
    scene = strategy_scene(holds_pid=True, sibling_restarted=True)
    assert wrong_strategy(scene.session().facts) == []


def test_intensity_zero_gives_up_at_the_first_failure():
    scene = Scene(NAMES, tree())
    scene.exit(W1, NOPROC, at=5, name="conn_1")
    scene.exit(W2, SHUTDOWN, at=5.1, name="conn_2")
    scene.exit(SUP, SHUTDOWN, at=5.2, name="pool_sup")
    causes = gave_up(scene.session().facts)
    assert len(causes) == 1 and "it restarted them 0 time(s)" in causes[0].summary


def test_a_temporary_childs_crash_then_a_stop_is_no_giving_up():
    # not restarted (temporary), and the supervisor stopped a second later
    scene = Scene(NAMES, tree())
    scene.exit(W1, NOPROC, at=5, name="conn_1")
    scene.exit(W2, SHUTDOWN, at=1004, name="conn_2")
    scene.exit(SUP, SHUTDOWN, at=1005, name="pool_sup")
    assert gave_up(scene.session().facts) == []
