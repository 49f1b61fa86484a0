"""Build hook: compile the in-node Erlang agent and bundle the widgets so a wheel ships both."""

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
AGENT = HERE / "elixir_hooks" / "agent" / "microscope_agent.erl"
AGENT_OUT = HERE / "microscope_jupyter" / "agent"
JS = HERE / "js"
STATIC = HERE / "microscope_jupyter" / "widgets" / "static"


class BuildWithAssets(build_py):
    def run(self):
        if shutil.which("erlc") and AGENT.exists():
            subprocess.run(["erlc", "-o", str(AGENT_OUT), str(AGENT)], check=True)
        if shutil.which("npm") and (JS / "package.json").exists() \
                and not (STATIC / "sequence_diagram.js").exists():
            if not (JS / "node_modules").exists():
                subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True)
            subprocess.run(["node", "build.mjs"], cwd=JS, check=True)
        super().run()


setup(cmdclass={"build_py": BuildWithAssets})
