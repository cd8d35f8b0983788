"""The server's HTTP side (`jobplane-server --http ADDR`): the web console and Prometheus
`/metrics`, on the server's event loop. See front.py for what is served where."""

from .console import Console
from .front import HttpFront
from .gateway import Gateway
from .metrics import MetricsPage

__all__ = ["Console", "Gateway", "HttpFront", "MetricsPage"]
