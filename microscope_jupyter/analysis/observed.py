"""How long a recording watched: rates divide by the time traced, never by
the untraced gap between two traces of one session.

    observed_seconds(store)                  # every recording's span, summed
    observed_seconds(store, (lo_ns, hi_ns))  # only the part inside a window
"""

from __future__ import annotations

from ..store.event_store import EventStore

__all__ = ["observed_seconds"]


def observed_seconds(store: EventStore, window: tuple[int, int] | None = None) -> float:
    total = 0
    for lo, hi in store.recording_spans():
        if window is not None:
            lo, hi = max(lo, window[0]), min(hi, window[1])
        total += max(hi - lo, 0)
    return max(total / 1e9, 1e-9)
