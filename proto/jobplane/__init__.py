"""jobplane: a gRPC control plane for batch jobs.

Import the part you need: ``jobplane.client`` (SDK), ``jobplane.agent``,
``jobplane.server``; ``jobplane.v1`` holds the generated contract.
"""

__version__ = "0.1.0"
