"""mic.compare's modules aspect, from hand-built recordings and module lists."""

from __future__ import annotations

import pandas as pd

from fake_agent import demo_recording, tally
from microscope_jupyter.analysis.compare import VERSION_COLUMNS, compare


def versions(*rows):
    return pd.DataFrame([(m, md5, "demo", "0.1.0", None, None) for m, md5 in rows],
                        columns=VERSION_COLUMNS)


def test_a_module_only_one_recording_ran_is_added_or_removed_not_changed():
    a, b = demo_recording(tally), demo_recording(tally)
    diff = compare(a.facts, b.facts, (versions(("Elixir.Demo.Old", "aa"), ("Elixir.Demo.Both", "bb")),
                                      versions(("Elixir.Demo.Both", "cc"), ("Elixir.Demo.New", "dd"))))
    modules = diff.frame()
    modules = modules[modules["aspect"] == "module"].set_index("what")["change"].to_dict()
    assert modules == {"Elixir.Demo.Both": "changed", "Elixir.Demo.New": "added",
                       "Elixir.Demo.Old": "removed"}


def crashing_worker(worker):
    """Demo.WorkerA (the pool here) spawns an unnamed worker that crashes, then
    sends it a job: a crash and a lost message, about a process with no name."""
    from fake_agent import A
    from microscope_jupyter.beam.terms import Atom

    def build(agent):
        agent.event("spawn", A, peer=worker, payload=(Atom("demo"), Atom("work"), []))
        agent.event("link", A, peer=worker)
        agent.event("exit", worker, payload=(Atom("badarith"), []))
        agent.event("send", A, peer=worker, payload=(Atom("job"), 1))
    return build


def test_unnamed_processes_are_lined_up_by_what_they_are_not_by_pid():
    from fake_agent import B2, C

    runs = [demo_recording(crashing_worker(pid)) for pid in (C, B2)]
    assert runs[0].findings()["pid"].tolist() != runs[1].findings()["pid"].tolist()
    diff = compare(runs[0].facts, runs[1].facts, (versions(), versions()))
    assert diff.significant().empty, diff.frame().to_string()
    # against a recording without it, the trouble is new, named by what the process is
    new = compare(demo_recording(tally).facts, runs[0].facts, (versions(), versions())).significant()
    found = set(new.loc[new["aspect"] == "finding", "what"])
    assert found and all(w.endswith("(a child of Demo.WorkerA)") or "(Demo." in w
                         for w in found), found
    assert any(w.endswith("(a child of Demo.WorkerA)") for w in found), found
