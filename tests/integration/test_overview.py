"""s.overview() against real OTP 25 and OTP 28 nodes: every figure checked
against the node's own, read again by a second, independent rpc; the
scheduler_wall_time flag left as it was found; the recorded tops against the
node's samples and the node itself; a process's details and the tree."""

from __future__ import annotations

import time

import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom
from microscope_jupyter.errors import MicroscopeError
from nodes import wait_until

# A process holding 400 unread messages, an ETS table of 1000 rows owned by
# a named process, and a process spinning for 2 s: one tops each measure.
SETUP = """
Hoard = spawn(fun() -> receive stop -> ok end end),
register(ov_hoard, Hoard),
[Hoard ! {msg, N} || N <- lists:seq(1, 400)],
Owner = spawn(fun() -> T = ets:new(ov_table, [named_table, public, set]),
                       ets:insert(T, [{K, K} || K <- lists:seq(1, 1000)]),
                       receive stop -> ok end end),
register(ov_owner, Owner),
Until = erlang:monotonic_time(millisecond) + 2000,
Spin = spawn(fun() -> Loop = fun(L) -> case erlang:monotonic_time(millisecond) < Until of
                                           true -> L(L); false -> ok end end,
                      Loop(Loop) end),
register(ov_spin, Spin),
ok.
"""
CLEANUP = """
[exit(P, kill) || N <- [ov_hoard, ov_owner, ov_spin, ov_holder, ov_rec],
                  P <- [whereis(N)], P =/= undefined], ok.
"""
FLAG = "erlang:statistics(scheduler_wall_time) =/= undefined."


@pytest.fixture
def node(session):
    session.eval_erlang(CLEANUP)
    session.eval_erlang(SETUP)
    wait_until(lambda: session.rpc("ets", "info", [Atom("ov_table"), Atom("size")]) == 1000)
    yield session
    session.eval_erlang(CLEANUP)


def whereis(s, name: str) -> str:
    return str(s.rpc("erlang", "whereis", [Atom(name)]))


def settled_memory(s, name: str) -> int:
    """A process's memory once two reads agree (the first read of a process
    whose mailbox just filled can move its messages, and its memory)."""
    read = f"element(2, erlang:process_info(whereis({name}), memory))."
    seen = [s.eval_erlang(read)]
    wait_until(lambda: seen.append(s.eval_erlang(read)) or seen[-1] == seen[-2])
    return seen[-1]


def test_every_figure_is_the_nodes_own(node):
    s = node
    memory = settled_memory(s, "ov_hoard")
    ov = s.overview(window=0.4, top=5)
    hoard, owner, spin = (whereis(s, n) for n in ("ov_hoard", "ov_owner", "ov_spin"))

    # top processes: each figure as process_info gives it, read again now
    by_mailbox = ov.snapshot.top("mailbox")
    assert by_mailbox.iloc[0]["pid"] == hoard and by_mailbox.iloc[0]["name"] == "ov_hoard"
    assert by_mailbox.iloc[0]["message_queue_len"] == 400 == s.rpc(
        "erlang", "process_info", [s.rpc("erlang", "whereis", [Atom("ov_hoard")]),
                                   Atom("message_queue_len")])[1]
    hoard_row = ov.processes.set_index("pid").loc[hoard]
    assert hoard_row["memory"] == memory == settled_memory(s, "ov_hoard")
    assert ov.snapshot.top("reductions").iloc[0]["pid"] == spin   # spinning through the window
    assert (ov.processes["reductions_in_window"] <= ov.processes["reductions"]).all()
    assert len(ov.snapshot.top("memory")) == 5

    # memory: the categories of erlang:memory(), and their sizes (they move a little)
    again = {str(k): v for k, v in s.rpc("erlang", "memory")}
    mine = dict(zip(ov.memory["category"], ov.memory["bytes"]))
    assert set(mine) == set(again)
    for category in ("total", "processes", "system", "ets", "code", "atom"):
        assert abs(mine[category] - again[category]) <= max(0.1 * again[category], 65_536), category

    # ETS: the table as ets:info has it
    table = ov.ets.set_index("table").loc["ov_table"]
    wordsize = s.rpc("erlang", "system_info", [Atom("wordsize")])
    words = s.rpc("ets", "info", [Atom("ov_table"), Atom("memory")])
    assert (table["owner"], table["owner_name"], table["size"]) == (owner, "ov_owner", 1000)
    assert (table["memory_words"], table["memory_bytes"]) == (words, words * wordsize)
    assert (table["type"], table["protection"]) == ("set", "public")
    assert ov.snapshot.totals["ets"] == len(s.rpc("ets", "all"))

    # ports: each one listed is the node's, with its name and owner
    ports = s.eval_erlang("[{P, erlang:port_info(P, name), erlang:port_info(P, connected)} "
                          "|| P <- erlang:ports()].")
    known = {str(p): ("".join(map(chr, name[1])), str(connected[1]))
             for p, name, connected in ports if name != Atom("undefined")}
    assert len(ov.ports) and ov.snapshot.totals["ports"] == len(ports)
    for row in ov.ports.itertuples():
        assert (row.name, row.connected) == known[row.port]

    # schedulers: every thread of the node's, normal ones first; one was busy spinning
    counts = [s.rpc("erlang", "system_info", [Atom(k)])
              for k in ("schedulers", "dirty_cpu_schedulers", "dirty_io_schedulers")]
    assert ov.schedulers["id"].tolist() == list(range(1, sum(counts) + 1))
    assert ov.schedulers["type"].tolist() == (["normal"] * counts[0] + ["dirty_cpu"] * counts[1]
                                              + ["dirty_io"] * counts[2])
    assert ov.schedulers["utilisation"].between(0, 1).all()
    normal = ov.schedulers[ov.schedulers["type"] == "normal"]
    assert normal["utilisation"].max() > 0.8
    assert 0.35 <= ov.snapshot.window_s < 2
    assert ov.system["process_count"] == pytest.approx(
        s.rpc("erlang", "system_info", [Atom("process_count")]), abs=5)


def test_the_scheduler_flag_is_left_as_it_was_found(node):
    s = node
    assert s.eval_erlang(FLAG) is False
    ov = s.overview(window=0.1)
    assert ov.snapshot.scheduler_flag == {"before": False, "after": False}
    assert s.eval_erlang(FLAG) is False and len(ov.schedulers)

    # someone else holds it: it is used and left on, and goes off when they let go
    s.eval_erlang("register(ov_holder, spawn(fun() -> erlang:system_flag(scheduler_wall_time, "
                  "true), receive stop -> erlang:system_flag(scheduler_wall_time, false) end "
                  "end)), ok.")
    wait_until(lambda: s.eval_erlang(FLAG) is True)
    ov.refresh()
    assert ov.snapshot.scheduler_flag == {"before": True, "after": True}
    assert s.eval_erlang(FLAG) is True and len(ov.schedulers)
    s.eval_erlang("ov_holder ! stop, ok.")
    wait_until(lambda: s.eval_erlang(FLAG) is False)


def test_recorded_tops_are_the_nodes_samples(node, tmp_path):
    s = node
    s.eval_erlang("register(ov_rec, spawn(fun() -> receive stop -> ok end end)), ok.")
    with s.trace("ov_rec", mailbox_ms=50, duration=5):
        s.eval_erlang("[ov_rec ! {a, N} || N <- lists:seq(1, 100)], ok.")
        time.sleep(0.4)
        s.eval_erlang("[ov_rec ! {b, N} || N <- lists:seq(1, 200)], ok.")
        time.sleep(0.4)
    ov = s.overview(window=0.1)
    rec = whereis(s, "ov_rec")
    end = ov.recorded_tops().set_index("pid").loc[rec]
    # the last sample (taken as the trace stopped) is what the node holds now
    assert end["mailbox_len"] == 300 == s.eval_erlang(
        "element(2, erlang:process_info(whereis(ov_rec), message_queue_len)).")
    samples = s.metrics()
    mine = samples[samples["pid"] == rec]
    mailbox = mine[mine["metric"] == "mailbox_len"]
    assert end["mailbox_len"] == mailbox["value"].iloc[-1]
    assert end["memory_bytes"] == mine[mine["metric"] == "memory_bytes"]["value"].iloc[-1]
    assert "mailbox" in end["top"] and end["name"] == "ov_rec"
    # at the time of the sample that saw the first 100, the tops say 100
    t0 = s.events["ts"].min()
    first = mailbox[mailbox["value"] == 100].iloc[0]
    at_ms = (first["ts"] - t0).total_seconds() * 1000
    then = ov.recorded_tops(at_ms=at_ms).set_index("pid").loc[rec]
    assert then["mailbox_len"] == 100 and then["mailbox_at_ms"] == pytest.approx(at_ms, abs=0.01)
    ov.at_ms = at_ms
    assert next(r for r in ov.recorded if r["pid"] == rec)["mailbox_len"] == 100

    # saved and loaded: the same tops, and no node to read
    s.save(tmp_path / "rec")
    offline = mic.load(tmp_path / "rec").overview()
    assert offline.recorded_tops().set_index("pid").loc[rec]["mailbox_len"] == 300
    with pytest.raises(MicroscopeError, match="no node was read"):
        offline.schedulers
    assert "ov_rec" in offline.static_html()


def test_a_process_and_the_tree_are_one_click_away(node):
    s = node
    ov = s.overview(window=0.1, top=3)
    hoard = whereis(s, "ov_hoard")
    ov.selected = hoard
    assert ov.details["pid"] == hoard and "mailbox 400" in ov.details["counters"]
    tree = ov.open_tree(hoard)
    assert ov.tab == "tree" and ov.tree_ref == f"anywidget:{tree.model_id}"
    assert tree.selected == hoard and tree.details["pid"] == hoard
    assert hoard in {n["pid"] for n in tree.nodes}
    html = ov.static_html()
    assert "ov_hoard" in html and "ov_table" in html and "Schedulers" in html


def test_live_refresh_reads_again(node):
    s = node
    ov = s.overview(window=0.05)
    ov.interval = 0.1
    first = ov.figures["as_of"], ov.snapshot.taken_at
    ov.live = True
    wait_until(lambda: ov.snapshot.taken_at > first[1], timeout=10)
    ov.live = False
    assert ov.error == ""


def test_the_magic(ip, any_node, tmp_path):
    cookie = tmp_path / "cookie"
    cookie.write_text(any_node.cookie)
    ip.run_line_magic("beam_attach", f"{any_node.name} --cookie-file {cookie}")
    ov = ip.run_line_magic("beam_overview", "--window 0.1 --top 3")
    assert len(ov.schedulers) and len(ov.processes) >= 3
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="unknown option --windw. Did you mean --window?"):
        ip.run_line_magic("beam_overview", "--windw 1")
    with pytest.raises(UsageError, match="expected a window between 0.05 and 10 seconds"):
        ip.run_line_magic("beam_overview", "--window 60")
    ip.run_line_magic("beam_detach", "")
