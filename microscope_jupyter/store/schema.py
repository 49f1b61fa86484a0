"""The event schema: the wire header the agent writes and the columns users see.

Each event arrives as a fixed-width 40-byte little-endian header (numpy reads
a batch of them in one call) plus an optional raw ``term_to_binary`` payload.
Keep ``KINDS`` in step with the ``K_*`` defines in
``elixir_hooks/agent/microscope_agent_events.erl``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HEADER_DTYPE", "KINDS", "KIND_CODES", "AUX", "LOG_LEVELS", "EVENT_COLUMNS",
           "FLAG_TRUNCATED", "normalise_aux", "kind_mask", "ACTS"]

HEADER_DTYPE = np.dtype([
    ("kind", "u1"),
    ("flags", "u1"),
    ("pad", "<u2"),
    ("pid", "<u4"),      # interned id, 0 = none
    ("peer", "<u4"),     # interned id: the other pid, a registered name, or a {Name, Node}
    ("mfa", "<u4"),      # interned {M, F, Arity}
    ("ts", "<i8"),       # node monotonic time, native units
    ("pay_off", "<u4"),  # offset of the payload in the batch's payload blob
    ("pay_len", "<u4"),
    ("aux", "<i8"),      # one number whose meaning depends on the kind; see AUX below
])
assert HEADER_DTYPE.itemsize == 40

KINDS = {
    1: "spawn", 2: "exit", 3: "link", 4: "unlink", 5: "register", 6: "unregister",
    7: "send", 8: "send_to_dead", 9: "receive", 10: "call", 11: "return", 12: "exception",
    13: "state", 14: "gc", 15: "dropped", 16: "long_gc", 17: "long_schedule",
    18: "large_heap", 19: "line", 20: "annotation", 21: "monitor", 22: "demonitor",
    # a `receive ... after` that fired (Process.sleep, a GenServer timeout): never a message
    23: "timeout",
    # a state hook was installed on the process (aux 1), and the state it
    # had then (aux 2, payload: the state, as a state event's would be)
    24: "hook",
    25: "mailbox",    # the node's own message_queue_len of the process, sampled
    # the process's memory, heap and reductions, sampled when it has run
    # (payload: %{memory: bytes, heap_words: n, reductions: total so far,
    # binary_bytes: its refc binaries' bytes, on the samples that read them})
    26: "vitals",
    # the tracer changed how much it keeps (aux: the level: 0 everything,
    # 1 payloads capped, 2 one message in 8, 3 no messages): what a level
    # leaves out is in the dropped counts
    27: "granularity",
    # calls of a function (mfa) since the last sample, counted by the BEAM
    # (call_count: no message per call); a flight recorder's counters level
    28: "call_count",
    # a log event of the node (Logger, logger, crash and supervisor reports),
    # forwarded by the agent's logger handler; aux is the level (LOG_LEVELS),
    # peer a supervisor report's child (payload: {Level, Text, Summary})
    29: "log",
}
KIND_CODES = {name: code for code, name in KINDS.items()}

# What ``aux`` holds, by kind, once a batch is in the store. The agent sends
# callback durations in the node's native time unit and system-monitor
# durations in milliseconds; ingest turns both into nanoseconds, so no
# reader needs to know the node's clock.
AUX = {
    "state": "duration_ns",       # the callback itself, from message taken to return
    "long_gc": "duration_ns",
    "long_schedule": "duration_ns",
    "dropped": "count",           # events dropped in the span that ends here
    "mailbox": "count",           # message_queue_len
    "vitals": "bytes",            # the process's memory (process_info memory)
    "large_heap": "words",        # allocated heap, the figure the monitor compared
    "gc": "major",                # 1 for a major collection
    "demonitor": "by_down",       # 0 demonitor/1, 1 the watcher learnt of it from a 'DOWN',
                                  # 2 found removed (demonitor/2) by then: the time a bound
    "hook": "installed",
    "granularity": "level",
    "call_count": "count",
    "line": "line",               # the source line of an inspect_line call
    "log": "level",               # 0 emergency .. 7 debug, as LOG_LEVELS names them
}

# A hook event's aux: the hook went in (1), or it carries the state the
# process had then (2); a removal is 0.
HOOK_INSTALLED, HOOK_BASE = 1, 2

# Logger's levels by their number (syslog's), the ``aux`` of a ``log`` event.
LOG_LEVELS = ["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"]

FLAG_TRUNCATED = 1

# A demonitor event's aux when a check found the monitor gone (its time a bound).
DEMONITOR_FOUND = 2

# The public columns of Session.events, in order (design.md).
EVENT_COLUMNS = ["seq", "node", "ts", "kind", "pid", "name", "peer", "mfa", "term", "text"]

def kind_mask(*names: str) -> np.ndarray:
    """A lookup table by kind code (``mask[kinds]``): True for the kinds named.
    Faster than ``np.isin`` on a batch's few thousand rows."""
    mask = np.zeros(256, dtype=bool)
    mask[[KIND_CODES[name] for name in names]] = True
    return mask


_MONITOR_MS = kind_mask("long_gc", "long_schedule")   # aux in ms from the system monitor


def normalise_aux(table: np.ndarray, native_per_second: int) -> None:
    """Durations in ``aux`` to nanoseconds (see ``schema.AUX``), in place."""
    kind, aux = table["kind"], table["aux"]
    callbacks = kind == KIND_CODES["state"]
    if native_per_second != 1_000_000_000 and callbacks.any():
        aux[callbacks] = (aux[callbacks].astype(np.float64)
                          * (1e9 / native_per_second)).astype(np.int64)
    monitor = _MONITOR_MS[kind]
    if monitor.any():
        aux[monitor] = aux[monitor] * 1_000_000


# What a process does itself (so a plain process has taken what it received
# before it), not what is said of it: samples, collections, hooks, drops.
ACTS = kind_mask("spawn", "exit", "link", "unlink", "register", "unregister", "send",
                 "send_to_dead", "call", "return", "exception", "state", "line", "monitor",
                 "demonitor", "timeout")
