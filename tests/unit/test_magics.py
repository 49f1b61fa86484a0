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
                       "[--tls-ca PATH [--tls-cert PATH --tls-key PATH]] | --demo"),
    ("demo@h --cookie-fil x", "unknown option --cookie-fil. Did you mean --cookie-file? Usage: "
                              "%beam_attach NODE@HOST [--cluster] [--cookie-file PATH] "
                              "[--net-ticktime SECONDS]"
                              " [--tls-ca PATH [--tls-cert PATH --tls-key PATH]] | --demo"),
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


def test_help_lists_every_option(ip):
    from microscope_jupyter.magics import TRACE_OPTIONS

    trace_help = ip.find_cell_magic("trace").__doc__
    assert all(f"--{name}" in trace_help for name in TRACE_OPTIONS), trace_help
    attach_help = ip.find_line_magic("beam_attach").__doc__
    for option in ("--cookie-file", "--net-ticktime", "--demo"):
        assert option in attach_help
    for magic in ("beam_exunit", "beam_mcp", "beam_explain", "beam_sequence", "beam_timetravel"):
        assert ip.find_line_magic(magic).__doc__.startswith(f"%{magic}")

