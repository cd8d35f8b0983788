"""jobplane: a gRPC control plane for batch jobs.

Import the part you need: ``jobplane.client`` (SDK), ``jobplane.agent``,
``jobplane.server``; ``jobplane.v1`` holds the generated contract.

Every part may import this root package; it holds what they share besides the contract:
``jobplane.files`` (the one atomic write), ``jobplane.attempts`` (how an attempt
ended: the agent builds it, the server's domain reads it), ``jobplane.logs`` (the
server's and the agent's log formats) and ``jobplane.prometheus`` (their /metrics' instruments
and text format), ``jobplane.arguments`` (command-line argument types), ``jobplane.connect``
(how the client and the agent reach a server, without the agent importing the client SDK),
``jobplane.grpc_core`` (how loud gRPC's C core is in each part).
"""

__version__ = "0.1.0"
