"""What every console route shares: the answers (a page with the security headers, a redirect,
a static file), the cookie, the map from gRPC codes to HTTP statuses, and the role checks that
decide which buttons a page offers (the API decides what a call may do)."""

from __future__ import annotations

import re
from importlib import resources
from urllib.parse import urlencode

import grpc

from jobplane.v1 import security_pb2

from .server import Request, Response

COOKIE = "jobplane_token"
TEXT = "text/plain; charset=utf-8"
TOKEN_FORM = re.compile(r"[\x21-\x7e]{1,512}")  # what may go into a header: printable ASCII
SEES_ALL = (security_pb2.ROLE_ADMIN, security_pb2.ROLE_OPERATOR, security_pb2.ROLE_VIEWER)
OPERATES = (security_pb2.ROLE_ADMIN, security_pb2.ROLE_OPERATOR)
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
HTTP_OF = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.PERMISSION_DENIED: 403,
           grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
           grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.UNAUTHENTICATED: 401,
           grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNAVAILABLE: 503}
SECURITY_HEADERS = [("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
                    ("Referrer-Policy", "same-origin"), ("Cache-Control", "no-store")]


def page(status: int, html: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, html, "text/html; charset=utf-8", [*SECURITY_HEADERS, *(headers or [])])


def static(name: str) -> Response:
    if name not in STATIC:
        return Response(404, "no such file\n", TEXT)
    data = (resources.files(__package__) / "static" / name).read_bytes()
    return Response(200, data, STATIC[name], [("Cache-Control", "no-cache")])


def redirect(location: str, *, token: str = "", clear: bool = False) -> Response:
    headers = [("Location", location), *SECURITY_HEADERS]
    if token:
        headers.append(("Set-Cookie", f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"))
    elif clear:
        headers.append(("Set-Cookie", f"{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"))
    return Response(303, "", TEXT, headers)


def here(request: Request) -> str:
    return request.path + ("?" + urlencode(request.query) if request.query else "")


def local(path: str) -> str:
    """Where to go next: a path on this site only (no open redirect)."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


def same_origin(request: Request) -> bool:
    """A form post from this site (browsers send Origin with every POST; the SameSite=Strict
    cookie is the first guard against another site's forms, this the second)."""
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    return origin is None or origin in (f"http://{host}", f"https://{host}")  # (https: behind a TLS proxy)


def who(me: security_pb2.WhoAmIResponse) -> str:
    role = security_pb2.Role.Name(me.role).removeprefix("ROLE_").lower()
    return f"{me.identity} ({role})"


def may_act_on(me: security_pb2.WhoAmIResponse, owner: str) -> bool:
    """Whether the caller's role may cancel, hold and release a job of `owner`: operators and
    admins any job, a submitter their own (the API enforces it; this only hides buttons)."""
    return me.role in OPERATES or (me.role == security_pb2.ROLE_SUBMITTER and me.identity == owner)


def operates(me: security_pb2.WhoAmIResponse) -> bool:
    return me.role in OPERATES
