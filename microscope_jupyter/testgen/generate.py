"""``s.exunit``: a generated test of the process's own kind. A GenServer or an
Agent gets ``exunit.py``'s, a ``:gen_statem`` ``statem.py``'s; any other
process is refused in one line that names what is supported."""

from __future__ import annotations

from typing import Any, Callable

from ..analysis.facts import Facts
from ..errors import QueryError
from .exunit import MODES, ExUnitTest
from .exunit import exunit as genserver_exunit
from .statem import SUPPORTED, statem_exunit

__all__ = ["exunit"]


def exunit(facts: Facts, proc: Any, *, between: tuple[int, int] | None = None,
           mode: str = "reproduce", module: str | None = None,
           rules: list[Callable] = ()) -> ExUnitTest:
    if mode not in MODES:
        raise QueryError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    states = facts.states(proc)
    if states.empty:
        raise QueryError(f"{proc} has no recorded state transitions: generated tests cover "
                         f"{SUPPORTED}; trace it (state=True) while it handles messages")
    if states["postponed"].notna().any():
        return statem_exunit(facts, proc, between=between, mode=mode, module=module)
    return genserver_exunit(facts, proc, between=between, mode=mode, module=module, rules=rules)
