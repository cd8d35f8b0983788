"""What `Client` and `AsyncClient` share for ViewService: resources by the names users type."""

from __future__ import annotations

from jobplane.v1 import view_pb2

RESOURCES: dict[str, int] = {"jobs": view_pb2.VIEW_RESOURCE_JOBS, "tasks": view_pb2.VIEW_RESOURCE_TASKS}
NAMES = {value: name for name, value in RESOURCES.items()}


def save_request(name: str, resource: str, filter: str, order_by: str) -> view_pb2.SaveViewRequest:
    """Raises ValueError for a resource other than "jobs" or "tasks"."""
    if resource not in RESOURCES:
        raise ValueError(f"resource must be jobs or tasks, not {resource!r}")
    view = view_pb2.View(name=name, resource=RESOURCES[resource], filter=filter, order_by=order_by)
    return view_pb2.SaveViewRequest(view=view)
