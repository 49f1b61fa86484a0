"""Term helpers of beam/terms.py that are not the codec's."""

from __future__ import annotations

from microscope_jupyter.beam.terms import Atom, ImproperList, MapPairs, Pid, pids_in

A, B, C, D = (Pid(Atom("n@h"), n, 0, 1) for n in range(4))


def test_pids_in_finds_every_pid_in_first_met_order_through_every_container():
    term = (A, [B, {Atom("k"): C}], ImproperList((A,), D), MapPairs([(B, 1)]), Atom("x"), 3)
    assert list(pids_in(term)) == [A, B, C, D]


def test_pids_in_extends_what_it_is_given():
    found = pids_in(C)
    assert list(pids_in([A, C], found)) == [C, A] and found == {C: None, A: None}
