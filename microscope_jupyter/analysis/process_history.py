"""One process's history in a recording: what time travel and findings read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..beam.etf import decode
from ..store.otp import transition

__all__ = ["ProcessHistory", "Transitions"]


class Transitions(Sequence):
    """A process's recorded transitions (``store.otp.transition`` dicts), each
    decoded the first time it is read: indexing a big recording decodes none,
    a snapshot decodes one per process. Shared payloads decode once."""

    def __init__(self, payload: Callable[[int], bytes], memo: dict, seqs: list[int]):
        self._payload, self._memo, self._seqs = payload, memo, seqs

    def __len__(self) -> int:
        return len(self._seqs)

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        blob = self._payload(self._seqs[k])
        found = self._memo.get(blob)
        if found is None:
            found = self._memo[blob] = transition(decode(blob))
        return found


@dataclass
class ProcessHistory:
    """One process across a recording, indexed for time travel: its events, names,
    states, relations and mailbox (see ``History`` for what each means)."""

    gid: int
    pid: str
    first_seq: int
    exit_seq: int | None = None
    names: list = field(default_factory=list)          # [(seq, name or None)], sorted
    state_seqs: list = field(default_factory=list)
    base_seq: int | None = None      # the hook event carrying its state when hooked
    states: "Transitions | None" = None                  # decoded when read
    state_shapes: list = field(default_factory=list)  # each message: store.pairing.OTHER...
    state_ts_in: list = field(default_factory=list)
    state_ts_out: list = field(default_factory=list)
    recv_seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    handled_seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    handled_by_state: dict = field(default_factory=dict)  # receive seq -> state seq
    event_seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # [(seq, peer_gid, +1/-1)], seq -1 for those held at the start
    link_events: list = field(default_factory=list)
    monitor_events: list = field(default_factory=list)       # monitors this process holds
    monitored_by_events: list = field(default_factory=list)  # monitors held on it
    # the node's message_queue_len as sampled, and the seqs where the process
    # took a message off its queue (callbacks; else the handled estimate)
    sample_seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sample_values: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    taken_seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # receives taken as they arrived (a reply to a call made inside a callback)
    direct_seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    line_seqs: list = field(default_factory=list)   # inspect_line events, in order
    log_seqs: list = field(default_factory=list)    # the node's log events about it, in order
    _levels: tuple | None = field(default=None, repr=False, compare=False)  # mailbox_levels()

    def last_name(self, seq: int) -> str | None:
        """The last name it held at or before ``seq`` (kept after it let go of it)."""
        return next((n for s, n in reversed(self.names) if n and s <= seq), None)

    def mailbox_len(self, seq: int) -> int:
        """Messages queued at ``seq``, from the node's samples on either side:
        moved on by what arrived and was taken in between, the smaller of the
        two when both exist. A sample is answered somewhere between its request
        and its event, and a receive event can come after the message was
        queued, so a sample taken while a callback awaits three Tasks counts
        six messages the events show arriving and leaving around it: carried
        to its neighbours, that would invent a backlog. An unseen take errs
        the other way from the earlier side. A plain process (no callbacks)
        takes the nearer sample as it is: when it takes a message no event
        shows, and counting it taken at its next act makes a loop that absorbs
        messages look backlogged."""
        return int(self._estimate(np.array([seq], dtype=np.int64))[0][0])

    def mailbox_basis(self, seq: int) -> str:
        """Where ``mailbox_len(seq)`` comes from, in words: ``"node"`` when it is
        the node's own sample as it stands, else how the estimate was made."""
        _, origin, level, arrived, taken, after = (
            int(v[0]) for v in self._estimate(np.array([seq], dtype=np.int64)))
        if origin < 0:
            return "estimate: no sample of its queue, none seen arrive" if not arrived else \
                f"estimate: no sample of its queue, +{arrived} arrived, -{taken} taken"
        if arrived == 0 and taken == 0:
            return "node"
        when = "later" if after else "earlier"
        if not self.state_seqs:
            return (f"estimate: the node's {level} at seq {origin}, {when} (a plain process: "
                    f"{arrived} arrived between, and when it takes one no event shows)")
        return (f"estimate: the node's {level} at seq {origin}, {when}, "
                f"{arrived} arrived and {taken} taken between")

    def _estimate(self, seqs: np.ndarray) -> tuple:
        """Per seq: (length, the sample's seq or -1, its value, arrived and taken
        between the two, whether the sample came after)."""
        samples, values = self.sample_seqs, self.sample_values
        n = len(samples)
        k = np.searchsorted(samples, seqs, side="right") - 1     # the sample at or before
        j = k + 1                                                # the sample after
        has_prev, has_next = k >= 0, j < n
        last = max(n - 1, 0)
        prev = np.where(has_prev, samples[np.clip(k, 0, last)] if n else -1, -1)
        nxt = np.where(has_next, samples[np.clip(j, 0, last)] if n else -1, -1)
        prev_level = np.where(has_prev, values[np.clip(k, 0, last)] if n else 0, 0)
        next_level = np.where(has_next, values[np.clip(j, 0, last)] if n else 0, 0)
        arrived_before, taken_before = self._moved(prev, seqs)     # since the earlier sample
        arrived_after, taken_after = self._moved(seqs, nxt)        # until the later one
        if not self.state_seqs:
            after = has_next & (~has_prev | (nxt - seqs < seqs - prev))
            forward = np.where(has_prev, prev_level, np.maximum(0, arrived_before - taken_before))
            backward = next_level
        else:
            forward = np.maximum(0, prev_level + arrived_before - taken_before)
            backward = np.maximum(0, next_level + taken_after - arrived_after)
            # at a sample itself, the node's count stands
            after = has_next & (~has_prev | ((backward < forward) & (prev != seqs)))
        length = np.where(after, backward, forward)
        origin = np.where(after, nxt, np.where(has_prev, prev, -1))
        level = np.where(after, next_level, prev_level)
        arrived = np.where(after, arrived_after, arrived_before)
        taken = np.where(after, taken_after, taken_before)
        return length.astype(np.int64), origin, level, arrived, taken, after

    def _moved(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(arrived, taken) in (lo, hi] per pair; none where lo is past hi."""
        def count(seqs):
            c = np.searchsorted(seqs, hi, side="right") - np.searchsorted(seqs, lo, side="right")
            return np.maximum(c, 0)
        return count(self.recv_seqs), count(self.taken_seqs)

    def sampled(self, start: int | None = None, end: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(seqs, lengths) of the node's own samples of its queue, within [start, end]."""
        lo = 0 if start is None else int(np.searchsorted(self.sample_seqs, start, side="left"))
        hi = len(self.sample_seqs) if end is None else int(
            np.searchsorted(self.sample_seqs, end, side="right"))
        return self.sample_seqs[lo:hi], self.sample_values[lo:hi]

    def mailbox_levels(self) -> tuple[np.ndarray, np.ndarray]:
        """(seqs, lengths): the mailbox length after every seq where it may change."""
        if self._levels is None:
            seqs = np.concatenate([self.recv_seqs, self.taken_seqs, self.sample_seqs])
            seqs.sort()
            seqs = seqs[np.r_[True, seqs[1:] != seqs[:-1]]] if len(seqs) else seqs
            self._levels = (seqs, self._estimate(seqs)[0])
        return self._levels
