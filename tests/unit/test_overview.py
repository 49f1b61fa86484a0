"""The system overview's shaping, from a hand-built reply of the node and a
hand-built recording: what is the node's own stays as it came, what is
computed says how."""

from __future__ import annotations

import pandas as pd
import pytest
from fake_agent import A, B, MS, NODE, demo_recording

from microscope_jupyter.analysis.tops import RECORDED_COLUMNS, recorded_span_ms, recorded_tops
from microscope_jupyter.beam.terms import Atom, Pid, Port, Reference
from microscope_jupyter.errors import MicroscopeError
from microscope_jupyter.overview import (COMPUTED, ETS_COLUMNS, PORT_COLUMNS, PROCESS_COLUMNS,
                                         SCHEDULER_COLUMNS, shape)
from microscope_jupyter.widgets.overview import SystemOverview, figures_of, static_rendering

U = Atom("undefined")


def pid(n: int) -> Pid:
    return Pid(Atom(NODE), n, 0, 1)


def reply(**changes):
    """What OVERVIEW_SOURCE returns: 2 normal, 1 dirty CPU, 1 dirty I/O scheduler."""
    got = {
        Atom("scheduler_flag_before"): False, Atom("scheduler_flag_after"): False,
        Atom("wall_before"): [(1, 100, 1000), (2, 0, 1000), (3, 0, 1000), (4, 0, 1000)],
        Atom("wall_after"): [(2, 250, 2000), (1, 1100, 2000), (3, 500, 2000), (4, 0, 2000)],
        Atom("elapsed_us"): 500_000,
        Atom("processes"): [
            (pid(40), 7, 5000, 900, 0, Atom("Elixir.MyApp.Hoard"),
             ((Atom("gen_server"), Atom("loop"), 7), Atom("waiting")),
             (Atom("Elixir.MyApp.Hoard"), Atom("init"), 1)),
            (pid(41), 0, 90_000, 80_000, 60_000, U, (U, Atom("exited")), U),
            (pid(42), 0, 100, 10, 0, U,
             ((Atom("erlang"), Atom("hibernate"), 3), Atom("waiting")), U)],
        Atom("process_total"): 3,
        Atom("memory"): [(Atom("total"), 20_000), (Atom("processes"), 8_000), (Atom("ets"), 900)],
        Atom("ets"): [(Reference(Atom(NODE), 1, (5, 6, 7)), 120,
                       [(Atom("name"), Atom("cache")), (Atom("size"), 40), (Atom("type"), Atom("set")),
                        (Atom("protection"), Atom("public"))], pid(40), Atom("Elixir.MyApp.Hoard")),
                      (Atom("named"), 30, [(Atom("name"), Atom("named")), (Atom("size"), 2),
                                           (Atom("type"), Atom("bag")),
                                           (Atom("protection"), Atom("private"))], pid(42), U)],
        Atom("ets_total"): 12,
        Atom("ports"): [(Port(Atom(NODE), 8, 1), [(Atom("name"), list(b"tcp_inet")),
                                                  (Atom("connected"), pid(41)), (Atom("os_pid"), U),
                                                  (Atom("input"), 300), (Atom("output"), 20)],
                         40, 0, U)],
        Atom("port_total"): 4,
        Atom("system"): [(Atom("schedulers"), 2), (Atom("dirty_cpu_schedulers"), 1),
                         (Atom("wordsize"), 8), (Atom("otp_release"), list(b"28")),
                         (Atom("process_count"), 3), (Atom("run_queue"), 0)],
    }
    got.update({Atom(k): v for k, v in changes.items()})
    return got


def test_schedulers_are_the_nodes_times_and_their_ratio():
    snap = shape(reply(), NODE, top=2)
    assert list(snap.schedulers.columns) == SCHEDULER_COLUMNS
    rows = snap.schedulers.to_dict("records")
    assert [(r["id"], r["type"], r["active"], r["total"]) for r in rows] == [
        (1, "normal", 1000, 1000), (2, "normal", 250, 1000), (3, "dirty_cpu", 500, 1000),
        (4, "dirty_io", 0, 1000)]
    assert [r["utilisation"] for r in rows] == [1.0, 0.25, 0.5, 0.0]
    assert snap.window_s == 0.5 and "utilisation" in COMPUTED


def test_no_scheduler_times_is_an_empty_table_not_a_guess():
    snap = shape(reply(wall_after=U), NODE)
    assert snap.schedulers.empty and list(snap.schedulers.columns) == SCHEDULER_COLUMNS


def test_processes_keep_the_nodes_figures_and_say_which_tops_they_are_in():
    snap = shape(reply(), NODE, top=2)
    frame = snap.processes
    assert list(frame.columns) == PROCESS_COLUMNS
    hoard = frame.iloc[0].to_dict()
    assert hoard["pid"] == "<0.40.0>" and hoard["name"] == "MyApp.Hoard"
    assert hoard["initial_call"] == "MyApp.Hoard.init/1"
    assert hoard["current_function"] == ":gen_server.loop/7"
    assert (hoard["message_queue_len"], hoard["memory"], hoard["reductions"]) == (7, 5000, 900)
    # an empty mailbox or an idle process is in no top of those; memory always counts
    assert dict(zip(frame["pid"], frame["top"])) == {
        "<0.40.0>": ["mailbox", "memory"], "<0.41.0>": ["memory", "reductions"], "<0.42.0>": []}
    gone = frame.iloc[1]
    assert gone["status"] == "exited" and gone["name"] is None and gone["current_function"] is None
    assert snap.top("reductions")["pid"].tolist() == ["<0.41.0>"]
    assert snap.top("memory", 1)["pid"].tolist() == ["<0.41.0>"]
    with pytest.raises(MicroscopeError, match="expected by='mailbox'"):
        snap.top("heap")


def test_erlang_syntax_names_processes_as_erlang_does():
    frame = shape(reply(), NODE, syntax="erlang").processes
    assert frame.iloc[0]["name"] == "Elixir.MyApp.Hoard"
    assert frame.iloc[0]["current_function"] == "gen_server:loop/7"


def test_ets_ports_memory_and_totals():
    snap = shape(reply(), NODE)
    assert list(snap.ets.columns) == ETS_COLUMNS and list(snap.ports.columns) == PORT_COLUMNS
    cache, named = snap.ets.to_dict("records")
    assert cache["table"] == "#Ref<0.7.6.5>" and cache["name"] == "cache"
    assert (cache["owner"], cache["owner_name"], cache["size"]) == ("<0.40.0>", "MyApp.Hoard", 40)
    assert (cache["memory_words"], cache["memory_bytes"]) == (120, 960)   # words x wordsize
    assert named["table"] == "named" and named["owner_name"] is None and named["type"] == "bag"
    port = snap.ports.iloc[0].to_dict()
    assert port["port"] == "#Port<0.8>" and port["name"] == "tcp_inet"
    assert port["connected"] == "<0.41.0>" and pd.isna(port["os_pid"])
    assert (port["input"], port["output"], port["memory"], port["queue_size"]) == (300, 20, 40, 0)
    assert snap.memory.to_dict("records")[0] == {"category": "total", "bytes": 20_000}
    assert snap.totals == {"processes": 3, "ets": 12, "ports": 4}
    assert snap.system["otp_release"] == "28" and snap.scheduler_flag == {"before": False,
                                                                         "after": False}


def sampled(agent):
    """B sampled at 0, 100 and 200 ms (mailbox 3, 9, 1); A once at 50 ms."""
    agent.event("spawn", A, ts=0)
    for n, (length, memory, reductions) in enumerate([(3, 1000, 100), (9, 4000, 2100),
                                                      (1, 3000, 2600)]):
        agent.event("mailbox", B, aux=length, ts=n * 100 * MS)
        agent.event("vitals", B, aux=memory, ts=n * 100 * MS + 1,
                    payload={Atom("memory"): memory, Atom("heap_words"): memory // 8,
                             Atom("reductions"): reductions})
    agent.event("vitals", A, aux=50_000, ts=50 * MS,
                payload={Atom("memory"): 50_000, Atom("heap_words"): 6000,
                         Atom("reductions"): 10})


def test_recorded_tops_are_the_last_samples_at_the_moment_asked():
    s = demo_recording(sampled)
    assert recorded_span_ms(s.facts) == pytest.approx(200, abs=0.01)
    assert list(recorded_tops(s.facts).columns) == RECORDED_COLUMNS
    end = recorded_tops(s.facts).set_index("name")
    worker = end.loc["Demo.WorkerB"]
    assert (worker["mailbox_len"], worker["memory_bytes"], worker["reductions"]) == (1, 3000, 2600)
    assert worker["mailbox_at_ms"] == pytest.approx(200)
    # computed: 500 reductions in the last 100 ms between samples
    assert worker["reductions_per_s"] == pytest.approx(5000, rel=1e-3)
    assert end.loc["Demo.WorkerA"]["top"] == ["memory"]   # one sample: no rate, no mailbox
    at = recorded_tops(s.facts, at_ms=150).set_index("name").loc["Demo.WorkerB"]
    assert (at["mailbox_len"], at["memory_bytes"]) == (9, 4000)
    assert at["reductions_per_s"] == pytest.approx(20_000, rel=1e-3)
    first = recorded_tops(s.facts, at_ms=10)
    assert first["name"].tolist() == ["Demo.WorkerB"] and first["reductions_per_s"].isna().all()
    assert str(first["mailbox_len"].dtype) == "Int64"
    assert recorded_tops(s.facts, at_ms=-1).empty


def test_a_recordings_overview_has_its_tops_and_says_it_read_no_node():
    s = demo_recording(sampled)
    ov = s.overview()
    assert ov.tab == "recorded" and not ov.can_read and ov.figures == {}
    assert {r["name"] for r in ov.recorded} == {"Demo.WorkerA", "Demo.WorkerB"}
    ov.at_ms = 150.0
    assert next(r for r in ov.recorded if r["name"] == "Demo.WorkerB")["mailbox_len"] == 9
    with pytest.raises(MicroscopeError, match="no node was read"):
        ov.schedulers
    ov.selected = "<0.101.0>"
    assert ov.details["pid"] == "<0.101.0>"
    page = ov.static_html()
    assert "As recorded" in page and "Demo.WorkerB" in page and "at 150 ms of 200 ms" in page


def test_static_rendering_shows_every_tab_escaped():
    snap = shape(reply(processes=[(pid(40), 7, 5000, 900, 0, Atom("<script>"),
                                   (U, Atom("waiting")), U)]), NODE)
    page = static_rendering(figures_of(snap), [])
    assert "<script>" not in page and "&lt;script&gt;" in page
    for part in ("Schedulers", "100.0%", "25.0%", "Memory", "Top processes by mailbox",
                 "ETS tables (largest 2 of 12)", "Ports (busiest 1 of 4)", "tcp_inet"):
        assert part in page, part
    assert "Nothing sampled" in static_rendering({}, [])


def test_the_widget_is_exported():
    from microscope_jupyter import widgets

    assert widgets.SystemOverview is SystemOverview
