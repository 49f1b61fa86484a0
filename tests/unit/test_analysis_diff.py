"""Structural diff: paths in Elixir access syntax, readable text, a DataFrame."""

from __future__ import annotations

from microscope_jupyter.analysis.diff import diff, diff_frame, render_diff, same_term
from microscope_jupyter.beam.terms import Atom

S = Atom("__struct__")


def paths(a, b):
    return [(c.path, c.change) for c in diff(a, b)]


def test_maps_and_nested_paths():
    before = {Atom("count"): 1, Atom("users"): {Atom("ann"): {Atom("age"): 30}}, "k": 1}
    after = {Atom("count"): 2, Atom("users"): {Atom("ann"): {Atom("age"): 31}}, "new": True}
    assert paths(before, after) == [(".count", "changed"), (".users.ann.age", "changed"),
                                    ('["k"]', "removed"), ('["new"]', "added")]


def test_structs_compare_fields_and_type():
    user = {S: Atom("Elixir.User"), Atom("name"): "ada"}
    assert paths(user, {**user, Atom("name"): "grace"}) == [(".name", "changed")]
    admin = {S: Atom("Elixir.Admin"), Atom("name"): "ada"}
    assert paths(user, admin) == [("", "changed")]


def test_keyword_lists_tuples_and_lists():
    assert paths([(Atom("a"), 1), (Atom("b"), 2)], [(Atom("a"), 1), (Atom("b"), 3)]) == \
        [("[:b]", "changed")]
    assert paths((Atom("ok"), 1), (Atom("ok"), 2)) == [(" |> elem(1)", "changed")]
    assert paths([1, 2, 3], [1, 9, 3]) == [(" |> Enum.at(1)", "changed")]
    assert paths([1, 2, 3], [1, 2, 3, 4]) == [(" |> Enum.at(3)", "added")]
    assert paths([1, 2, 3], [2, 3]) == [(" |> Enum.at(0)", "removed")]


def test_erlang_equality_not_python_equality():
    assert paths({Atom("n"): 1}, {Atom("n"): 1.0}) == [(".n", "changed")]
    assert paths(Atom("ok"), "ok") == [("", "changed")]
    assert not same_term(True, 1)
    assert diff({Atom("a"): [1, {Atom("b"): 2}]}, {Atom("a"): [1, {Atom("b"): 2}]}) == []


def test_rendering_and_frame():
    changes = diff({Atom("count"): 9, Atom("last"): None}, {Atom("count"): 10, Atom("last"): 10})
    assert render_diff(changes) == ".count: 9 -> 10\n.last: nil -> 10"
    assert render_diff(changes, "erlang") == ".count: 9 -> 10\n.last: nil -> 10"
    assert render_diff([]) == "(no change)"
    frame = diff_frame(changes)
    assert list(frame.columns) == ["path", "change", "before", "after", "before_text", "after_text"]
    assert frame["after_text"].tolist() == ["10", "10"]
