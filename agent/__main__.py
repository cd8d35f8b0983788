"""`python -m jobplane.agent`: the same as `jobplane-agent` (startup.py)."""

import sys

from .startup import run

if __name__ == "__main__":
    sys.exit(run())
