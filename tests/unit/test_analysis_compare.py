"""mic.compare's modules aspect, from hand-built recordings and module lists."""

from __future__ import annotations

import re
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


def pool(workers, extra=None, slow=0):
    """Demo.WorkerA (a pool) spawns ``workers`` (pids that differ by run) with
    :demo.work/1, sends each {:job, n} and gets {:done, n} back; ``slow`` of
    WorkerB's callbacks take 150 ms; ``extra``: a message WorkerA sends each too."""
    from fake_agent import A, B
    from microscope_jupyter.beam.terms import Atom

    def handled(n):
        return (Atom("work"), n), n, n + 1, Atom("noreply"), Atom("gen_server")

    def build(agent):
        for n, worker in enumerate(workers):
            agent.event("spawn", A, peer=worker, mfa=(Atom("demo"), Atom("work"), 1))
            for message in [(Atom("job"), n)] + ([extra] if extra is not None else []):
                agent.event("send", A, peer=worker, payload=message)
                agent.event("receive", worker, payload=message)
            agent.event("send", worker, peer=A, payload=(Atom("done"), n))
            agent.event("receive", A, payload=(Atom("done"), n))
            agent.event("exit", worker, payload=Atom("normal"))
        for n in range(max(slow, 1)):
            agent.event("state", B, payload=handled(n), aux=150_000_000 if n < slow else 1000)
    return build


def worker_pids(first, count=20):
    from fake_agent import NODE
    from microscope_jupyter.beam.terms import Atom, Pid

    return [Pid(Atom(NODE), first + i, 0, 7) for i in range(count)]


def test_flows_of_short_lived_processes_line_up_by_what_they_are_and_the_shape():
    from microscope_jupyter.analysis.roles import flows, role_of

    a, b = (demo_recording(pool(worker_pids(first))) for first in (200, 900))
    assert role_of(a.facts, "<0.200.0>") == "a child of Demo.WorkerA running :demo.work/1"
    assert role_of(a.facts, "<0.999.0>") == "an unnamed process"   # never seen: no pid
    assert flows(a.facts)["flow"].value_counts().to_dict() == {
        "Demo.WorkerA -> a child of Demo.WorkerA running :demo.work/1 {:job, _}": 20,
        "a child of Demo.WorkerA running :demo.work/1 -> Demo.WorkerA {:done, _}": 20}
    diff = compare(a.facts, b.facts, (versions(), versions()))
    assert diff.frame().empty, diff.frame().to_string()


def test_a_message_added_is_named_by_its_shape():
    from microscope_jupyter.beam.terms import Atom

    a = demo_recording(pool(worker_pids(200)))
    b = demo_recording(pool(worker_pids(900), extra=(Atom("cancel"), 1, 2)))
    rows = compare(a.facts, b.facts, (versions(), versions())).frame()
    added = "Demo.WorkerA -> a child of Demo.WorkerA running :demo.work/1 {:cancel, _, _}"
    counted = rows[(rows["aspect"] == "messages") & (rows["what"] == added)].iloc[0]
    assert counted["change"].startswith("new") and counted["after"] == 20
    rate = rows[(rows["aspect"] == "rate") & (rows["what"] == added)].iloc[0]
    assert rate["significant"] and "started: none in the baseline" in rate["change"]
    assert len(rows) == 2 and not re.search(r"\binf\b", rows.to_string())


def test_a_threshold_finding_is_a_change_only_past_chance():
    """One slow callback in one recording is chance; many are a change."""
    base = demo_recording(pool(worker_pids(200)))
    for slow, significant in ((1, False), (2, False), (12, True)):
        other = demo_recording(pool(worker_pids(900), slow=slow))
        rows = compare(base.facts, other.facts, (versions(), versions())).frame()
        row = rows[rows["what"] == "slow_handler (Demo.WorkerB)"].iloc[0]
        assert bool(row["significant"]) is significant, (slow, row.to_dict())
        assert row["change"] == "new" if significant else "too few" in row["change"]


def test_a_machine_twice_as_busy_is_no_change_of_the_apps_own():
    """Every flow at half the rate (the same work over twice the time) is the
    app's pace, said in a row of its own; one flow that fell behind the rest is a change."""
    from fake_agent import A, B, C
    from microscope_jupyter.beam.terms import Atom

    def traffic(every_us, slow_flow=1):
        def build(agent):
            ts = 0
            for n in range(60):
                for k, (sender, receiver) in enumerate(((A, B), (B, A), (A, C), (C, A))):
                    if k == 3 and n % slow_flow:
                        continue
                    ts += every_us * 1000
                    agent.event("send", sender, peer=receiver, payload=(Atom(f"m{k}"), n), ts=ts)
        return build

    base = demo_recording(traffic(100))
    slower = compare(base.facts, demo_recording(traffic(250)).facts, (versions(), versions()))
    assert slower.significant().empty, slower.frame().to_string()
    row = slower.frame().query("what == 'every flow'").iloc[0]
    assert row["change"].startswith("the app ran at 0.4") and not row["significant"]
    behind = compare(base.facts, demo_recording(traffic(100, slow_flow=4)).facts,
                     (versions(), versions())).significant()
    assert behind["what"].str.endswith("-> Demo.WorkerA {:m3, _}").tolist() == [True], behind
