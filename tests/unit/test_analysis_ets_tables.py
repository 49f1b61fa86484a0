"""An ETS table lost with its owner, from hand-built recordings, with the
healthy and the look-alike patterns."""

from __future__ import annotations

from fake_otp import APPLY, Scene, pid, row
from microscope_jupyter.analysis.ets_tables import lost_tables
from microscope_jupyter.beam.terms import Atom

SYNC, HTTP, FEED = pid(10), pid(11), pid(12)
TABLE = Atom("prices")


def ets_badarg(table) -> tuple:
    info = [(Atom("error_info"), {Atom("cause"): Atom("id"), Atom("module"): Atom("erl_stdlib_errors")})]
    return (Atom("badarg"), [(Atom("ets"), Atom("lookup"), [table, 7], info),
                             (Atom("http"), Atom("-quote/1-fun-0-"), 0, [])])


def lookups(scene: Scene, start: int, count: int, reason, at: float) -> None:
    for n in range(count):
        worker = pid(start + n)
        scene.start(HTTP, worker, None, at=at + 10 * n, mfa=APPLY)
        scene.exit(worker, reason, at=at + 10 * n + 1)


def owner_scene(owner_exits: bool, reason=None) -> Scene:
    scene = Scene([(SYNC, "sync"), (HTTP, "http"), (FEED, "feed")],
                  [row(SYNC, "sync", None), row(HTTP, "http", None), row(FEED, "feed", None)])
    lookups(scene, 100, 2, Atom("normal"), at=1)       # lookups that worked
    if owner_exits:
        scene.exit(SYNC, Atom("normal"), at=30, name="sync")
    lookups(scene, 200, 5, reason or ets_badarg(TABLE), at=40)
    return scene


def test_lookups_crash_after_the_tables_owner_exited():
    causes = lost_tables(owner_scene(owner_exits=True).session().facts)
    assert len(causes) == 1
    text = causes[0].summary
    assert causes[0].processes[0] == "sync"
    assert text.startswith("5 process(es) (spawned by http) crashed with badarg in "
                           "ets:lookup/2 on the ETS table :prices")
    assert "the error says the table does not exist: error_info cause id" in text
    assert "The table's owner was most likely sync, the last process to exit before the " \
           "first badarg: it ended (:normal" in text
    assert "2 process(es) of the crashers' own kind had ended normally before that exit" in text
    assert "heir" in text


def test_with_no_exit_before_the_owner_is_not_guessed():
    causes = lost_tables(owner_scene(owner_exits=False).session().facts)
    assert len(causes) == 1 and causes[0].confidence < 0.85
    assert "No process exited shortly before the first crash" in causes[0].summary
    assert "sync" not in causes[0].processes


def test_a_badarg_from_elsewhere_is_no_lost_table():
    other = (Atom("badarg"), [(Atom("erlang"), Atom("binary_to_term"), [b"\x83h"], [])])
    assert lost_tables(owner_scene(owner_exits=True, reason=other).session().facts) == []
