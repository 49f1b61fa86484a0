"""Messages a process never handled before it exited, and the one it was
handling when it crashed: what ``lost_message`` and the crash causes read.

    died_unread(facts)      # receive seqs still queued, unread, at an exit
    crash_messages(facts)   # pid -> the receive seq its raising callback took

A message is unread at an exit when no callback took it, and nothing else
shows it left the queue; see ``unread_at_exit`` for what does.
"""

from __future__ import annotations


from ..beam.terms import Atom
from ..store.otp import crash_site, message_kind, normal_exit
from .facts import Facts


__all__ = ["died_unread", "unread_at_exit", "crash_messages"]


def died_unread(facts: Facts) -> set[int]:
    """Receive seqs still queued when their receiver exited: not taken by a
    callback, not the one in hand at a crash, and within what the node's
    last sample of the queue says was there (a sample of L queued messages
    after they arrived leaves at most the L newest of them queued)."""
    fatal = set(crash_messages(facts).values())
    out: set[int] = set()
    for proc, unread in unread_at_exit(facts):
        unread = [r for r in unread if r not in fatal]
        seqs, level = proc.sampled(None, proc.exit_seq)
        if len(seqs) and unread:
            last, queued = int(seqs[-1]), int(level[-1])
            before = [r for r in unread if r < last]
            unread = (before[-queued:] if queued else []) + [r for r in unread if r > last]
        out.update(unread)
    return out


def unread_at_exit(facts: Facts):
    """(process history, receive seqs no callback took before it exited).

    What left the queue where no callback shows it (a ``DOWN`` flushed by
    ``demonitor``, a reply, a system message) is already taken by time
    travel (``taking``). Not unread either: the ``EXIT`` that carried the very
    reason it exited with (it was acted on), the message it chose to end on (a
    normal exit: a GenServer's oldest unfinished, a plain process's last), and
    whatever the node's own samples say was gone (see ``died_unread``)."""
    events = facts.events
    for proc in facts.history().processes():
        if proc.exit_seq is None or not len(proc.recv_seqs):
            continue
        unread = [int(r) for r, h in zip(proc.recv_seqs, proc.handled_seqs)
                  if h == proc.exit_seq and int(r) not in proc.handled_by_state]
        if not unread:
            continue
        reason = events["term"].iloc[proc.exit_seq]
        kept, acted_on = [], False
        for r in unread:
            message = events["term"].iloc[r]
            if _is_tagged(message, "EXIT", 3) and message[2] == reason:
                acted_on = True
                continue
            kept.append(r)
        if kept and not acted_on and normal_exit(reason):
            # It chose to end, on a message: a GenServer's callback returned
            # {:stop, ...} on the oldest it had not finished; a plain process
            # ended on the last it received.
            kept = kept[1:] if proc.state_seqs else kept[:-1]
        if kept:
            yield proc, kept


def _is_tagged(message, tag: str, arity: int) -> bool:
    return (isinstance(message, tuple) and len(message) == arity
            and message[0] == Atom(tag))


def crash_messages(facts: Facts) -> dict[str, int]:
    """pid -> receive seq of the message a callback was handling when it raised.

    A GenServer takes its messages in order, and a callback that raises
    leaves no state event: of the messages it never finished, the oldest of
    the kind the raising callback takes (a call, a cast, an info) is the one
    it was handling. That message was handled, fatally, not lost unread."""
    events = facts.events
    out = {}
    for proc, unread in unread_at_exit(facts):
        site = crash_site(events["term"].iloc[proc.exit_seq])
        if site is None:
            continue
        for seq in unread:
            if site[2] is None or message_kind(events["term"].iloc[seq]) == site[2]:
                out[proc.pid] = seq
                break
    return out
