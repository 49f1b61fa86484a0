"""The magics, driven through a real IPython shell against a real node (``ip`` in conftest)."""

from __future__ import annotations

import time

import pytest
from IPython.core.error import UsageError

import microscope_jupyter as mic
from nodes import wait_until


def attach_with_cookie_file(ip, node, tmp_path):
    cookie_file = tmp_path / "cookie"
    cookie_file.write_text(node.cookie)
    return ip.run_line_magic("beam_attach", f"{node.name} --cookie-file {cookie_file}")


def test_attach_processes_detach(ip, any_node, tmp_path, capsys):
    session = attach_with_cookie_file(ip, any_node, tmp_path)
    assert session.attached and session.node == any_node.name
    frame = ip.run_line_magic("beam_processes", "")
    assert "code_server" in set(frame["name"])
    assert not frame["name"].isna().any() and (frame["name"] == "").any()   # unnamed: blank
    # the agent's own process (the one reading the table) is no app's
    assert not frame["current_function"].fillna("").str.contains("microscope_agent").any()
    assert list(frame.columns[:4]) == ["pid", "name", "message_queue_len", "memory"]
    ip.run_line_magic("beam_detach", "")
    assert not session.attached
    assert f"Detached from {any_node.name}." in capsys.readouterr().out


def test_wrong_cookie_is_one_line_and_secret(ip, any_node, tmp_path):
    cookie_file = tmp_path / "cookie"
    cookie_file.write_text("wrong-cookie-value")
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("beam_attach", f"{any_node.name} --cookie-file {cookie_file}")
    assert "rejected the cookie" in str(info.value)
    assert "wrong-cookie-value" not in str(info.value) and "\n" not in str(info.value)
    # the hint speaks the magic's own options, not the Python keyword
    assert "--cookie-file PATH" in str(info.value) and "cookie=..." not in str(info.value)


def test_trace_usage_errors(ip, any_node, tmp_path):
    attach_with_cookie_file(ip, any_node, tmp_path)
    with pytest.raises(UsageError, match="unknown %trace command 'statu'. Did you mean status?"):
        ip.run_line_magic("trace", "statu")
    assert ip.run_line_magic("trace", "status") is None     # "no trace", said, not raised
    with pytest.raises(UsageError, match="--max-events needs int, got 'lots'"):
        ip.run_line_magic("trace", "start --max-events lots")
    with pytest.raises(UsageError, match="refusing to trace all of :lists"):
        ip.run_line_magic("trace", "start --modules lists")
    with pytest.raises(UsageError, match="nothing is recorded yet"):
        ip.run_line_magic("beam_sequence", "")


def test_trace_line_and_cell_forms_on_the_demo(ip, demo_node, tmp_path, capsys):
    s = attach_with_cookie_file(ip, demo_node, tmp_path)
    from microscope_jupyter.demo_app import DemoControls

    DemoControls(s).reset()
    ip.run_line_magic("trace", "start Demo.WorkerA --max-events 100000")
    status = ip.run_line_magic("trace", "status")      # a readable table, one row a field
    assert status.loc["state", "value"] == "running" and status.attrs["status"]["state"] == "running"
    assert "events" in status.index and "dropped" in status.index
    with pytest.raises(UsageError, match="a trace is already running"):
        ip.run_line_magic("trace", "start")
    ip.run_line_magic("trace", "stop")
    assert "Stopped:" in capsys.readouterr().out
    diagram = ip.run_cell_magic("trace", "--for 300ms",
                                "Demo.start_updates(20)\nProcess.sleep(300)\nDemo.stop_updates()")
    texts = diagram.msgs["text"]
    assert any(t.startswith('{:"$gen_call", ') and t.endswith("{:start, 20}}") for t in texts)
    assert "{:update, 1}" in texts
    lanes = {lane["label"] for lane in diagram.lanes}
    assert {"Demo.WorkerA", "Demo.WorkerB"} <= lanes
    with pytest.raises(UsageError, match=r"the elixir code raised on .*: \*\* \(RuntimeError\) boom$"):
        ip.run_cell_magic("trace", "", "raise \"boom\"")
    # errors as Elixir prints them: the function that is missing, where the syntax breaks
    with pytest.raises(UsageError, match=r"\*\* \(UndefinedFunctionError\) function Demo.nope/1 "
                                         r"is undefined or private$"):
        ip.run_cell_magic("trace", "", "Demo.nope(1)")
    with pytest.raises(UsageError, match=r"\*\* \(TokenMissingError\) nofile:2:9: missing terminator"):
        ip.run_cell_magic("trace", "", "x = 1\ny = (1 +")
    with pytest.raises(UsageError, match=r"the erlang code raised on .*: syntax error at line 1"):
        ip.run_cell_magic("trace", "--erlang", "X = (1 + .")
    tree = ip.run_line_magic("beam_tree", "")
    assert "Demo.Supervisor" in {n["name"] for n in tree.nodes}
    travel = ip.run_line_magic("beam_timetravel", "--at 5")
    assert travel.cursor == 5
    with pytest.raises(UsageError, match=r"--at 999999999 is outside the recording: its seqs "
                                         r"run 0-\d+"):
        ip.run_line_magic("beam_timetravel", "--at 999999999")
    explanation = ip.run_line_magic("beam_explain", "Why isn't WorkerB getting updates?")
    assert explanation.question == "Why isn't WorkerB getting updates?"
    assert explanation.text == s.explain("Why isn't WorkerB getting updates?").text


def test_attach_a_cluster_and_trace_it(ip, node_factory, tmp_path, capsys):
    import microscope_jupyter as mic
    from microscope_jupyter import Atom, Cluster
    from nodes import load_test_module, wait_until

    first = node_factory("otp25", prefix="mcl1")
    second = node_factory("otp25", prefix="mcl2", cookie=first.cookie)
    for node in (first, second):
        with mic.attach(node.name, cookie=node.cookie) as s:
            load_test_module(s, "mic_relay", tmp_path)
            s.rpc("mic_relay", "start", [])
            s.rpc("net_kernel", "connect_node", [Atom(first.name)])
    cookie_file = tmp_path / "cookie"
    cookie_file.write_text(first.cookie)
    c = ip.run_line_magic("beam_attach", f"{first.name} --cluster --cookie-file {cookie_file}")
    assert isinstance(c, Cluster) and sorted(c.nodes) == sorted([first.name, second.name])
    ip.run_line_magic("trace", "start")
    c.sessions[first.name].rpc("mic_relay", "pass", [[Atom(first.name), Atom(second.name)], 10])
    wait_until(lambda: sum(c.sessions[n].rpc("mic_relay", "hops", []) for n in c.nodes) >= 10)
    ip.run_line_magic("trace", "stop")
    assert "Stopped:" in capsys.readouterr().out
    assert set(c.events["node"].astype(str)) == {first.name, second.name}
    with pytest.raises(UsageError, match="one node"):
        ip.run_cell_magic("trace", "", "1 + 1")
    ip.run_line_magic("beam_detach", "")
    assert not c.attached


def test_a_blocking_cell_is_bounded_killed_on_the_node_and_said_in_one_line(ip, any_node,
                                                                            tmp_path):
    """`%%trace --for 500ms` over a cell that never returns: the wait ends at the
    duration plus the grace, the cell's process is killed on the node, one line says so."""
    from microscope_jupyter.magics import EVAL_GRACE_S

    attach_with_cookie_file(ip, any_node, tmp_path)
    started = time.monotonic()
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("trace", "--for 500ms --erlang",
                          "register(mic_blocked_cell, self()), timer:sleep(infinity).")
    waited = time.monotonic() - started
    assert 0.5 + EVAL_GRACE_S - 0.5 < waited < 0.5 + EVAL_GRACE_S + 5, waited
    assert str(info.value) == (f"the erlang code was still running on {any_node.name} after "
                               f"{0.5 + EVAL_GRACE_S:g} s, so it was killed there; make it "
                               "return sooner, or give it longer (timeout=, or %%trace --for)")
    ip.run_line_magic("beam_detach", "")
    with mic.attach(any_node.name, cookie=any_node.cookie) as observer:   # gone, for good
        wait_until(lambda: observer.eval_erlang("whereis(mic_blocked_cell).") ==
                   mic.Atom("undefined"), timeout=10)


def test_in_a_real_kernel_a_library_error_is_one_line_with_its_frames_folded():
    """What a notebook keeps (the error output nbconvert and JupyterLab show):
    the error's one line as its whole traceback, and the frames in a
    collapsed <details> just above it."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext microscope"),
        nbformat.v4.new_code_cell("import microscope_jupyter as mic\n"
                                  "raise mic.errors.QueryError('no recorded process matches x')"),
        nbformat.v4.new_code_cell("raise ValueError('not ours')")])
    NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True).execute()
    ours, theirs = nb.cells[1].outputs, nb.cells[2].outputs
    error = next(o for o in ours if o.output_type == "error")
    assert error.ename == "QueryError" and error.traceback == [
        "QueryError: no recorded process matches x"]
    folded = next(o for o in ours if o.output_type == "display_data")["data"]["text/html"]
    assert folded.startswith("<details><summary>traceback</summary>")
    assert "Traceback (most recent call last)" in folded and "QueryError" in folded
    assert len(next(o for o in theirs if o.output_type == "error").traceback) > 1


def test_investigate_magic_proposes_and_waits_for_approval(ip, node_factory, tmp_path):
    """%beam_investigate on a real node: the question with an apostrophe read
    whole, the budget from its options, and the first trace waiting for the
    person; nothing ran until inv.approve()."""
    node = node_factory("otp25", prefix="invm")
    try:
        attach_with_cookie_file(ip, node, tmp_path)
        inv = ip.run_line_magic("beam_investigate",
                                "Why isn't the total count right? --traces 1 --seconds 4")
        assert inv.question == "Why isn't the total count right?"
        assert (inv.budget.traces, inv.budget.seconds) == (1, 4.0)
        # a total that is wrong: the shared-table probe first, and it waits
        assert inv.status == "waiting" and inv.pending.step.hypothesis == "ets_race"
        session = inv.session
        assert len(session.store) == 0
        inv.approve()                                  # as the Approve button does
        assert inv.traces_run == 1 and len(session.recordings) == 1   # it ran, once
        # a bare node runs no application process: the probe saw nothing, and says so
        assert inv.path["showed"].iloc[0] == "no ets_race in 0 events"
        assert inv.status == "spent"                   # the budget was one trace
    finally:
        ip.run_line_magic("beam_detach", "")
        node.stop()
