"""Type-aware equality for decoded terms.

Python says ``1 == 1.0 == True`` and ``(1,) != [1]`` only sometimes matters;
Erlang distinguishes all of these. Tests compare with ``same_term``.
"""

from __future__ import annotations

from typing import Any

from microscope_jupyter.beam.terms import ImproperList, MapPairs


def same_term(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same_term(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        for key, value in a.items():
            match = [k for k in b if same_term(k, key)]
            if len(match) != 1 or not same_term(b[match[0]], value):
                return False
        return True
    if isinstance(a, ImproperList):
        return same_term(a.items, b.items) and same_term(a.tail, b.tail)
    if isinstance(a, MapPairs):
        return len(a.pairs) == len(b.pairs) and all(
            any(same_term(p, q) for q in b.pairs) for p in a.pairs)
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    return a == b
