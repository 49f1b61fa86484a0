"""Build hook: compile the in-node Erlang agent into the package so wheels ship it."""

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "elixir_hooks" / "agent" / "microscope_agent.erl"
OUT = HERE / "microscope_jupyter" / "agent"


class BuildWithAgent(build_py):
    def run(self):
        if shutil.which("erlc") and SOURCE.exists():
            subprocess.run(["erlc", "-o", str(OUT), str(SOURCE)], check=True)
        super().run()


setup(cmdclass={"build_py": BuildWithAgent})
