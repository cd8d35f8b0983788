"""The optional C part of jobplane (everything else is in pyproject.toml): the keeper's spawn
of a command (agent/_spawn.c), built where a C compiler and Python's headers are present;
without them the install goes on, and the keeper spawns with os.posix_spawn instead."""

import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform.startswith("linux"):
    ext_modules.append(Extension("jobplane.agent._spawn", ["agent/_spawn.c"], optional=True))

setup(ext_modules=ext_modules)
