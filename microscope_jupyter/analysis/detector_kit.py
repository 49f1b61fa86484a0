"""What the detectors share, kept below them all so none imports another's
helpers: the ``Cause`` a detector returns, the mailbox length that counts as
a backlog, a message's shape (``store.otp.message_shape``, re-exported) and a state's size.

    Cause("backlog", 0.8, "Demo.Sink fell behind ...", evidence=[12, 40])
    message_shape({:"$gen_cast", {:put, 1, 2}})   # "{:put, _, _}"
    state_entries(%{a: [1, 2]})                    # 3
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..beam.terms import Atom
from ..store.otp import message_shape

__all__ = ["Cause", "MAILBOX_GROWTH", "message_shape", "state_entries", "HEAP_WORDS",
           "REDUCTIONS", "BINARY_BYTES"]

# The keys of a vitals event's payload (store/schema.py): the sampler's readings.
HEAP_WORDS, REDUCTIONS, BINARY_BYTES = (Atom("heap_words"), Atom("reductions"),
                                        Atom("binary_bytes"))

# A mailbox this long (by the node's own count) is a backlog worth a finding.
MAILBOX_GROWTH = 50


@dataclass
class Cause:
    """A chain of findings that says why, with its evidence."""

    kind: str
    confidence: float       # 0-1: how sure the chain is (lower when the tool's cost weighs)
    summary: str            # plain words: what happened, why, what to do
    evidence: list[int] = field(default_factory=list)    # seqs
    processes: list[str] = field(default_factory=list)   # names, else pids


def state_entries(term: Any) -> int:
    """Map keys and list or tuple elements in a term, nested (the first 1000 of each)."""
    if isinstance(term, dict):
        return len(term) + sum(state_entries(v) for v in list(term.values())[:1000])
    if isinstance(term, (list, tuple)):
        return len(term) + sum(state_entries(v) for v in term[:1000])
    return 0
