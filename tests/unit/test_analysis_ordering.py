"""Two senders' messages taken in the wrong order, from hand-built recordings,
with the healthy patterns it resembles."""

from __future__ import annotations

from fake_otp import Scene, pid
from microscope_jupyter.analysis.ordering import overtaken_messages
from microscope_jupyter.beam.terms import Atom

WRITER, INDEXER, EDITOR = pid(10), pid(11), pid(12)
KEY = (Atom("quick"), 1)
CAST = Atom("$gen_cast")


def badkey(key) -> tuple:
    return ((Atom("badkey"), key),
            [(Atom("erlang"), Atom("map_get"), [key, {}], []),
             (Atom("indexer"), Atom("handle_cast"), 2, [(Atom("line"), 40)])])


def scene_with(create_from, key_in_create=KEY) -> Scene:
    """The editor's update reaches the indexer straight; the create goes
    through ``create_from`` and arrives 6 ms later; the update crashes it."""
    scene = Scene([(WRITER, "writer"), (INDEXER, "indexer"), (EDITOR, "editor")])
    create = (CAST, (Atom("created"), key_in_create, {}))
    update = (CAST, (Atom("updated"), KEY, {Atom("title"): b"Q3"}))
    scene.at("receive", WRITER, 1, payload=(CAST, (Atom("create"), key_in_create)))
    scene.at("send", EDITOR, 2, peer=INDEXER, payload=update)
    scene.at("receive", INDEXER, 2.1, payload=update)
    scene.at("send", create_from, 8, peer=INDEXER, payload=create)
    scene.at("receive", INDEXER, 8.1, payload=create)
    scene.exit(INDEXER, badkey(KEY), at=9, name="indexer")
    return scene


def test_an_update_that_overtook_the_create_from_another_sender():
    causes = overtaken_messages(scene_with(WRITER).session().facts)
    assert len(causes) == 1
    text = causes[0].summary
    assert causes[0].processes == ["indexer", "writer", "editor"]
    assert text.startswith("indexer crashed with {badkey, {:quick, 1}} handling the cast "
                           "{:updated, {:quick, 1}, %{title: \"Q3\"}} (seq ")
    assert "came from a different sender, writer, and arrived 6.0 ms later" in text
    assert "writer had it since seq 0, before the update arrived" in text
    assert "Erlang keeps messages in order only per pair of sender and receiver" in text


def test_one_sender_sending_both_is_no_ordering_race():
    # FIFO holds between one sender and one receiver: the sender's own bug
    assert overtaken_messages(scene_with(EDITOR).session().facts) == []


def test_no_later_message_with_the_key_is_no_ordering_race():
    scene = scene_with(WRITER, key_in_create=(Atom("quick"), 2))
    assert overtaken_messages(scene.session().facts) == []
