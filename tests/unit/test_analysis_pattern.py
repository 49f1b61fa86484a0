"""Elixir match patterns as predicates."""

from __future__ import annotations

import pytest

from microscope_jupyter.analysis.pattern import PatternError, compile_pattern, match_message
from microscope_jupyter.beam.terms import Atom, ImproperList

U = Atom("update")


@pytest.mark.parametrize("pattern, term, expected", [
    ("{:update, _}", (U, 3), True),
    ("{:update, _}", (U, 3, Atom("checkpoint")), False),
    ("{:update, n, :checkpoint}", (U, 10, Atom("checkpoint")), True),
    ("{x, x}", (1, 1), True),
    ("{x, x}", (1, 2), False),
    ("{x, x}", (1, 1.0), False),
    ("%{count: 2}", {Atom("count"): 2, Atom("last"): 1}, True),
    ("%{count: 2}", {Atom("count"): 1}, False),
    ('%{"k" => v}', {"k": 1}, True),
    ("%Demo.User{name: \"ada\"}", {Atom("__struct__"): Atom("Elixir.Demo.User"),
                                   Atom("name"): "ada"}, True),
    ("%Demo.User{}", {Atom("__struct__"): Atom("Elixir.Demo.Admin")}, False),
    ("[h | t]", [1, 2], True),
    ("[h | t]", [], False),
    ("[1, 2 | rest]", [1, 2], True),
    ("[_ | 3]", ImproperList([1], 3), True),
    ("[a: 1, b: _]", [(Atom("a"), 1), (Atom("b"), 9)], True),
    ("{:ok, nil}", (Atom("ok"), None), True),
    ("{:error, :\"odd atom\"}", (Atom("error"), Atom("odd atom")), True),
    ("MyApp.Worker", Atom("Elixir.MyApp.Worker"), True),
    ("-1.5", -1.5, True),
    ("1", 1.0, False),
    ('"héllo"', "héllo", True),
])
def test_patterns(pattern, term, expected):
    assert compile_pattern(pattern)(term) is expected


def test_callables_pass_through():
    predicate = lambda term: term == 1  # noqa: E731
    assert compile_pattern(predicate) is predicate


@pytest.mark.parametrize("bad", ["{:a, ", "%{a: }", "{:a} extra", "$", "{:a,, b}"])
def test_bad_patterns_say_so(bad):
    with pytest.raises(PatternError, match="pattern"):
        compile_pattern(bad)


@pytest.mark.parametrize("pattern, message, matched", [
    ("{:add, _}", (Atom("$gen_cast"), (Atom("add"), 2)), "cast"),
    ("{:add, _}", (Atom("$gen_call"), (1, 2), (Atom("add"), 2)), "call"),
    ("{:add, _}", (Atom("add"), 2), "send"),
    ('{:"$gen_cast", {:add, _}}', (Atom("$gen_cast"), (Atom("add"), 2)), "cast"),
    ("{:add, _}", (Atom("$gen_cast"), (Atom("sub"), 2)), None),
    ("{:add, _}", (Atom("$gen_cast"), (Atom("add"), 2), 3), None),   # no cast: 3 elements
])
def test_a_message_matches_by_what_its_code_wrote(pattern, message, matched):
    assert match_message(compile_pattern(pattern), message) == matched
