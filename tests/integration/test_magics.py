"""The magics, driven through a real IPython shell against a real node."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from microscope_jupyter import magics


@pytest.fixture
def ip():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "microscope")
    yield shell
    shell.run_line_magic("unload_ext", "microscope")
    assert magics._state["session"] is None


def test_attach_processes_detach(ip, any_node, tmp_path, capsys):
    cookie_file = tmp_path / "cookie"
    cookie_file.write_text(any_node.cookie)
    session = ip.run_line_magic("beam_attach", f"{any_node.name} --cookie-file {cookie_file}")
    assert session.attached and session.node == any_node.name
    frame = ip.run_line_magic("beam_processes", "")
    assert "code_server" in set(frame["name"].dropna())
    ip.run_line_magic("beam_detach", "")
    assert not session.attached
    assert f"Detached from {any_node.name}." in capsys.readouterr().out


@pytest.mark.parametrize("line, message", [
    ("", "name the node to attach to, e.g. %beam_attach demo@127.0.0.1"),
    ("a@h b@h", "%beam_attach takes one node name, got 'a@h' and 'b@h'"),
    ("demo@h --cookie abc", "a cookie typed into a cell is saved with the notebook; use "
                            "--cookie-file PATH, $MICROSCOPE_COOKIE or ~/.erlang.cookie"),
    ("demo@h --bogus", "unknown option --bogus; %beam_attach takes NODE@HOST "
                       "[--cookie-file PATH] [--net-ticktime SECONDS]"),
    ("demo@h --cookie-file /nonexistent/cookie",
     "cannot read the cookie file /nonexistent/cookie (No such file or directory)"),
])
def test_attach_usage_errors(ip, line, message):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("beam_attach", line)
    assert str(info.value) == message


def test_wrong_cookie_is_one_line_and_secret(ip, any_node, tmp_path):
    cookie_file = tmp_path / "cookie"
    cookie_file.write_text("wrong-cookie-value")
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("beam_attach", f"{any_node.name} --cookie-file {cookie_file}")
    assert "rejected the cookie" in str(info.value)
    assert "wrong-cookie-value" not in str(info.value) and "\n" not in str(info.value)


def test_commands_without_a_session(ip):
    with pytest.raises(UsageError, match="there is no attached node. Attach with %beam_attach"):
        ip.run_line_magic("beam_processes", "")
    with pytest.raises(UsageError, match="no attached node to detach from"):
        ip.run_line_magic("beam_detach", "")
