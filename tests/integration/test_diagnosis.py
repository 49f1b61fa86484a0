"""Diagnosis on the bug corpus, a fast subset: apps whose root cause the tool
names must stay named, on real nodes of both OTPs. bench/diagnosis.py runs
the whole corpus (and the healthy one) and prints the totals."""

from __future__ import annotations

import pytest

from bugs import BY_NAME, judge, run_bug

# One class per kind of evidence: messages lost to a dead pid after a restart,
# a call cycle, a state that only grows.
FAST = [("stale_pid", "otp25"), ("call_cycle", "otp28"), ("state_growth", "otp25")]


@pytest.mark.parametrize("name,runtime", FAST, ids=[f"{n}-{r}" for n, r in FAST])
def test_the_root_cause_is_named(name, runtime, tmp_path):
    result = run_bug(BY_NAME[name], runtime, seconds=3.0, build_dir=tmp_path, log_dir=tmp_path)
    assert not result.errors, result.errors
    assert result.verdict == "named", (result.missing, result.names_process, result.answer)


def test_the_judge_needs_the_process_and_every_word():
    bug = BY_NAME["stale_pid"]
    named = ("bug_stale_pid_reporter keeps a stale pid of bug_stale_pid_store after its "
             "restart")
    assert judge(bug, named)[0] == "named"
    assert judge(bug, named.replace("bug_stale_pid_reporter", "the reporter"))[0] == "symptom"
    assert judge(bug, "Nothing looks wrong in this recording.")[0] == "missed"
    # the app's own names say nothing about why
    assert judge(BY_NAME["unmatched_messages"], "bug_unmatched_messages_aggregator is busy "
                 "with its mailbox")[1] == [BY_NAME["unmatched_messages"].words[1]]
