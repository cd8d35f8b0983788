"""`python -m jobplane.agent`: the same as `jobplane-agent`."""

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
