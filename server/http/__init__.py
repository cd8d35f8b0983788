"""The server's HTTP side (`jobplane-server --http ADDR`): the web console and Prometheus
`/metrics`, on the server's event loop. See front.py for what is served where."""

from .front import HttpFront
from .metrics import MetricsPage

__all__ = ["HttpFront", "MetricsPage"]
