"""A cause: a chain of findings that says why, with its evidence."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Cause"]


@dataclass
class Cause:
    kind: str
    confidence: float       # 0-1: how sure the chain is (lower when the tool's cost weighs)
    summary: str            # plain words: what happened, why, what to do
    evidence: list[int] = field(default_factory=list)    # seqs
    processes: list[str] = field(default_factory=list)   # names, else pids
