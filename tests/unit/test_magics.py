"""The magics' own checks, through a real IPython shell (``ip`` in conftest): no node needed."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError


@pytest.mark.parametrize("line, message", [
    ("", "name the node to attach to, e.g. %beam_attach demo@127.0.0.1"),
    ("a@h b@h", "%beam_attach takes one node name, got 'a@h' and 'b@h'"),
    ("demo@h --cookie abc", "a cookie typed into a cell is saved with the notebook; use "
                            "--cookie-file PATH, $MICROSCOPE_COOKIE or ~/.erlang.cookie"),
    ("demo@h --bogus", "unknown option --bogus. Usage: %beam_attach NODE@HOST "
                       "[--cluster] [--cookie-file PATH] [--net-ticktime SECONDS] "
                       "[--tls-ca PATH [--tls-cert PATH --tls-key PATH]] [--ssh USER@HOST] | --demo"),
    ("demo@h --cookie-fil x", "unknown option --cookie-fil. Did you mean --cookie-file? Usage: "
                              "%beam_attach NODE@HOST [--cluster] [--cookie-file PATH] "
                              "[--net-ticktime SECONDS]"
                              " [--tls-ca PATH [--tls-cert PATH --tls-key PATH]] [--ssh USER@HOST]"
                              " | --demo"),
    ("demo@h --cookie-file /nonexistent/cookie",
     "cannot read the cookie file /nonexistent/cookie (No such file or directory)"),
])
def test_attach_usage_errors(ip, line, message):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("beam_attach", line)
    assert str(info.value) == message


def test_commands_without_a_session(ip):
    with pytest.raises(UsageError, match="there is no attached node. Attach with %beam_attach"):
        ip.run_line_magic("trace", "start")
    with pytest.raises(UsageError, match="there is no attached node. Attach with %beam_attach"):
        ip.run_line_magic("beam_processes", "")
    with pytest.raises(UsageError, match="no attached node to detach from"):
        ip.run_line_magic("beam_detach", "")


@pytest.mark.parametrize("line, message", [
    ("", "name one process. Usage: %beam_exunit PROC"),
    ("A B", "name one process. Usage: %beam_exunit PROC"),
    ("A --between 5-9", "--between takes two seqs, FIRST:LAST, not '5-9'"),
    ("A --mod X", "unknown option --mod. Did you mean --mode? Usage: %beam_exunit PROC"),
    ("A", "there is no session. Attach with %beam_attach"),
])
def test_exunit_usage_errors(ip, line, message):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("beam_exunit", line)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("line, message", [
    ("", "ask a question, like: %beam_investigate Why is the count low?"),
    ("--traces", "--traces needs a number, got ''"),
    ("Why isn't it counting? --traces two", "--traces needs a number, got 'two'"),
    ("Why? --trace 2", "unknown option --trace. Did you mean --traces?"),
    ("Why isn't WorkerB counting?", "there is no attached node. Attach with %beam_attach"),
])
def test_investigate_usage_errors(ip, line, message):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("beam_investigate", line)
    assert str(info.value).startswith(message)


def test_help_lists_every_option(ip):
    from microscope_jupyter.magics import TRACE_OPTIONS

    trace_help = ip.find_cell_magic("trace").__doc__
    assert all(f"--{name}" in trace_help for name in TRACE_OPTIONS), trace_help
    attach_help = ip.find_line_magic("beam_attach").__doc__
    for option in ("--cookie-file", "--net-ticktime", "--demo"):
        assert option in attach_help
    for magic in ("beam_exunit", "beam_mcp", "beam_explain", "beam_investigate", "beam_sequence",
                  "beam_timetravel"):
        assert ip.find_line_magic(magic).__doc__.startswith(f"%{magic}")



@pytest.fixture
def recorded(ip):
    """A recording laid down by the fake agent, as %beam_attach + %trace would leave it."""
    from fake_agent import crash_after_updates, demo_recording
    from microscope_jupyter import magics

    magics._state["session"] = demo_recording(crash_after_updates)
    yield ip
    magics._state["session"] = None


@pytest.mark.parametrize("cell, question", [
    ("%beam_explain Why isn't WorkerB receiving all updates?",
     "Why isn't WorkerB receiving all updates?"),
    ("e = %beam_explain why does it crash?\ne", "why does it crash?"),
    ("%beam_explain", None),
])
def test_beam_explain_takes_any_question_through_ipythons_input_handling(recorded, cell,
                                                                          question):
    """Through run_cell, so IPython's own transforms run: a trailing `?` is the
    question's, not a help request ("Object `updates` not found.")."""
    result = recorded.run_cell(cell)
    assert result.success, result.error_in_exec or result.error_before_exec
    assert result.result.question == question
    if question:
        assert "crash" in result.result.text


def test_trace_status_with_no_trace_answers_and_lets_a_run_all_go_on(ip, capsys):
    result = ip.run_cell("%trace status\nafter = 1")
    assert result.success and ip.user_ns["after"] == 1
    assert capsys.readouterr().out == "no trace: start one with %trace start (or %%trace)\n"


@pytest.mark.parametrize("name", ["microscope", "microscope_jupyter"])
def test_load_ext_under_either_name_and_unload_ext_removes_everything(ip, name):
    from microscope_jupyter.ipython_input import protect_explain_questions

    ip.run_line_magic("unload_ext", "microscope")      # as the fixture loaded it
    assert ip.find_line_magic("beam_attach") is None and ip.find_cell_magic("trace") is None
    assert protect_explain_questions not in ip.input_transformer_manager.cleanup_transforms
    ip.run_line_magic("load_ext", name)
    magics = ("beam_attach", "beam_detach", "beam_explain", "beam_mcp", "trace")
    assert all(ip.find_line_magic(m) is not None for m in magics)
    assert ip.find_cell_magic("trace") is not None
    ip.run_line_magic("unload_ext", name)
    assert all(ip.find_line_magic(m) is None for m in magics)
    assert ip.find_cell_magic("trace") is None
    assert "MicroscopeMagics" not in ip.magics_manager.registry
    assert protect_explain_questions not in ip.input_transformer_manager.cleanup_transforms
    assert ip.custom_exceptions == ()
    ip.run_line_magic("load_ext", "microscope")        # for the fixture to unload


def test_a_library_error_in_a_cell_is_one_line_and_its_frames_stay_reachable(ip, capsys):
    import sys

    from microscope_jupyter.errors import QueryError

    result = ip.run_cell("import microscope_jupyter as mic\n"
                         "raise mic.errors.QueryError('no recorded process matches x; pass a pid')")
    shown = capsys.readouterr()
    shown = shown.out + shown.err
    assert isinstance(result.error_in_exec, QueryError)
    assert shown.splitlines()[0] == "QueryError: no recorded process matches x; pass a pid"
    assert "Traceback" not in shown and "traceback.print_last()" in shown
    assert sys.last_value is result.error_in_exec      # %debug and print_last find it
    # anything else keeps IPython's own traceback
    ip.run_cell("raise ValueError('not ours')")
    assert "Traceback" in capsys.readouterr().out
