"""The nodes the tool boots (demo_app.boot_app_node: the demo, the notebooks'
apps, each bisect step) keep their cookie off every command line, listen on
127.0.0.1 only, and halt when the Python process that booted them dies,
however it dies."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from nodes import gone, wait_until

from microscope_jupyter.beam import epmd


def test_the_cookie_is_on_no_command_line_in_no_environment_and_left_in_no_file(demo_node):
    pid = demo_node.process.pid
    cookie = demo_node.cookie.encode()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"beam.smp" in cmdline and b"-home" in cmdline   # the node itself
    assert cookie not in cmdline
    assert cookie not in Path(f"/proc/{pid}/environ").read_bytes()
    everyone = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, check=True).stdout
    assert cookie not in everyone                       # what any local user sees
    home = getattr(demo_node, "home", None)
    assert home is not None and not (home / ".erlang.cookie").exists()   # read at boot, deleted


def test_distribution_listens_on_loopback_only(demo_node):
    alive, host = demo_node.name.split("@")
    assert host == "127.0.0.1"
    port = epmd.names(host)[alive]
    listening = []
    for line in Path(f"/proc/{demo_node.process.pid}/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:      # LISTEN
            listening.append(address)
    assert listening == ["0100007F"]                     # 127.0.0.1, not 0.0.0.0


BOOT_AND_WAIT = """
import sys
from microscope_jupyter.demo_app import boot_demo_node
node = boot_demo_node()
print(node.process.pid, getattr(node, "home", None), flush=True)
sys.stdin.read()
"""


def test_a_booted_node_halts_within_5_s_of_its_owners_kill_9():
    owner = subprocess.Popen([sys.executable, "-c", BOOT_AND_WAIT], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    pid = home = None
    try:
        pid_text, home = owner.stdout.readline().split()
        pid = int(pid_text)
        assert not gone(pid)
        os.kill(owner.pid, signal.SIGKILL)          # no atexit, no finally, no goodbye
        owner.wait(timeout=10)
        wait_until(lambda: gone(pid), timeout=5)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=10)
        if pid is not None and not gone(pid):
            os.kill(pid, signal.SIGKILL)
        if home not in (None, "None"):
            shutil.rmtree(home, ignore_errors=True)   # what stop() would have removed
