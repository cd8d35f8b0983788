"""Channel setup shared by the SDK, the CLI and the agent: where the server is (one address, or
the comma-separated addresses of its replicas), which credentials to present to each, and the
channel that carries them."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import grpc

from jobplane.client.credentials import ADMIN_TOKEN_FILE, CA_BUNDLE_FILE, Credentials
from jobplane.client.errors import InvalidArgument
from jobplane.replicas import split_addresses

log = logging.getLogger(__name__)

DEFAULT_TARGET = "localhost:7070"
# `jobplane up` records its address here (inside the data dir) for other commands on this machine.
UP_STATE_FILE = "up.json"
# Jobs with many tasks and batched agent messages are larger than gRPC's 4 MiB default.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # A server that stops answering (frozen, or cut off without the connection closing) breaks
    # the calls on it after keepalive_time + keepalive_timeout. gRPC waits for a ping's answer
    # for the smaller of keepalive_timeout and ping_timeout (a minute by default): both are set.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.ping_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Fail fast and let our own reconnect loops pace retries.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    # How long one attempt to connect (TCP and TLS handshake) may take, 20 s by default: a
    # replica that accepts connections but never answers (SIGSTOP) is given up this soon, and
    # the call goes to the next one, as it certainly reached no server.
    ("grpc.min_reconnect_backoff_ms", 3_000),
]


@dataclass(frozen=True)
class ServerTarget:
    """A server address and where it came from (for messages such as "nothing listens at ...")."""

    address: str
    source: str


def default_data_dir() -> Path:
    """$JOBPLANE_HOME, else ~/.local/share/jobplane: where `jobplane up` keeps its state."""
    home = os.environ.get("JOBPLANE_HOME")
    return Path(home) if home else Path.home() / ".local" / "share" / "jobplane"


def up_state_path(data_dir: Path | None = None) -> Path:
    """The file in which a running `jobplane up` records its address and pid."""
    return (data_dir or default_data_dir()) / UP_STATE_FILE


def read_up_state(path: Path) -> dict | None:
    """The state of the `jobplane up` recorded at `path`, or None if absent, unreadable or stale."""
    try:
        state = json.loads(path.read_text())
        address, pid = state["server"], int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(address, str) or not _process_exists(pid):
        return None  # left behind by an `up` that was killed
    return state


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def locate_server(target: str | None) -> ServerTarget:
    """The server to talk to: the flag, else $JOBPLANE_SERVER, else the local `up`, else the default."""
    if target:
        return ServerTarget(target, "--server")
    if env := os.environ.get("JOBPLANE_SERVER"):
        return ServerTarget(env, "$JOBPLANE_SERVER")
    path = up_state_path()
    if state := read_up_state(path):
        return ServerTarget(state["server"], f"jobplane up, {path}")
    return ServerTarget(DEFAULT_TARGET, "default")


def resolve_target(target: str | None) -> str:
    """The server address: the argument, else $JOBPLANE_SERVER, else the local `up`, else the default."""
    return locate_server(target).address


def resolve_addresses(target: str | None) -> list[str]:
    """The addresses of the server's replicas, as `resolve_target` finds them: one, or several
    comma-separated (`a:7070,b:7070`). Raises InvalidArgument when the text names none."""
    located = locate_server(target)
    addresses = split_addresses(located.address)
    if not addresses:
        raise InvalidArgument(f"{located.source}: {located.address!r} names no server; give HOST:PORT, or the "
                              "addresses of several replicas comma-separated (a:7070,b:7070)")
    return addresses


# Credentials, highest priority first: the caller's arguments, the environment, then (only for a
# server on this machine, so the local admin token never travels elsewhere) the running
# `jobplane up`'s up.json and the files a server keeps in the default data directory.


def locate_credentials(address: str, given: Credentials | None = None) -> Credentials:
    """The credentials to present to `address`.

    The first source that says anything decides between TLS and plaintext (`insecure`); with
    TLS, the token, the CA and the client certificate each come from the first source that
    has one. Nothing at all: TLS trusting the system's roots, with no token.
    """
    layers = [given or Credentials(), env_credentials()]
    if is_local_target(address):
        layers += [up_credentials(), data_dir_credentials()]
    return merge_credentials([layer for layer in layers if not layer.is_empty])


def env_credentials() -> Credentials:
    """$JOBPLANE_TOKEN (the secret or `@PATH`) and $JOBPLANE_CA (a path), unless $JOBPLANE_INSECURE=1."""
    if os.environ.get("JOBPLANE_INSECURE", "").strip().lower() in ("1", "true", "yes", "on"):
        return Credentials(insecure=True, origin="$JOBPLANE_INSECURE")
    return Credentials.from_options(
        token=os.environ.get("JOBPLANE_TOKEN") or None,
        ca=os.environ.get("JOBPLANE_CA") or None,
        origin="the environment",
    )


def up_credentials(path: Path | None = None) -> Credentials:
    """What the running `jobplane up` recorded in up.json: its CA and admin token files, or insecure."""
    path = path or up_state_path()
    state = read_up_state(path) or {}
    origin = f"jobplane up ({path})"
    if state.get("insecure") is True:
        return Credentials(insecure=True, origin=origin)
    ca, token_file = state.get("ca"), state.get("token_file")
    return Credentials(
        token=_readable_token(Path(token_file)) if isinstance(token_file, str) else None,
        ca=Path(ca) if isinstance(ca, str) and os.access(ca, os.R_OK) else None,
        origin=origin,
    )


def data_dir_credentials(data_dir: Path | None = None) -> Credentials:
    """The CA bundle and bootstrap admin token a server keeps in its data directory, if readable."""
    data_dir = data_dir or default_data_dir()
    ca = data_dir / CA_BUNDLE_FILE
    return Credentials(
        token=_readable_token(data_dir / ADMIN_TOKEN_FILE),
        ca=ca if os.access(ca, os.R_OK) else None,
        origin=f"the data directory {data_dir}",
    )


def merge_credentials(layers: list[Credentials]) -> Credentials:
    """Combine sources, highest priority first, as `locate_credentials` describes."""
    if not layers:
        return Credentials(origin="no credentials found")
    if layers[0].insecure:
        return layers[0]
    secure = [layer for layer in layers if not layer.insecure]
    token = next((layer for layer in secure if layer.token), None)
    ca = next((layer for layer in secure if layer.ca is not None), None)
    pair = next((layer for layer in secure if layer.cert is not None), None)
    origin = "; ".join(
        f"{what} from {layer.origin}" for what, layer in (("token", token), ("CA", ca), ("certificate", pair)) if layer
    )
    return Credentials(
        token=token.token if token else None,
        ca=ca.ca if ca else None,
        cert=pair.cert if pair else None,
        key=pair.key if pair else None,
        origin=origin,
    )


def _readable_token(path: Path) -> str | None:
    """The secret in `path`, or None if it is missing, unreadable or empty (found, not asked for)."""
    try:
        return path.read_text().strip() or None
    except OSError as error:
        if path.exists():
            log.debug("ignoring the token file %s: %s", path, error)
        return None


def is_local_target(address: str) -> bool:
    """Whether `address` is this machine: a loopback or wildcard IP, localhost, our host name, a
    unix socket, or the address the running `jobplane up` recorded."""
    if address.startswith("unix:"):
        return True
    host = address.removeprefix("dns:///").removeprefix("ipv4:").removeprefix("ipv6:").rpartition(":")[0]
    host = host.strip("[]").lower()
    try:
        ip = ipaddress.ip_address(host)
        return ip.is_loopback or ip.is_unspecified
    except ValueError:
        pass
    if host in ("localhost", socket.gethostname().lower()) or host.endswith(".localhost"):
        return True
    state = read_up_state(up_state_path())
    return state is not None and state["server"] == address


def transport_hint(credentials: Credentials, message: str) -> str:
    """What to try when a call failed with UNAVAILABLE `message`, given how this client connected."""
    text = message.lower()
    if "refused" in text:
        return ""  # nothing listens: not a matter of credentials
    if credentials.insecure:
        return ("This client spoke plaintext (--insecure or $JOBPLANE_INSECURE); unless the server was started "
                "with --insecure it wants TLS: drop --insecure and pass --ca DATA_DIR/ca-bundle.crt.")
    if "wrong_version_number" in text:
        return "The server answered in plaintext: it runs with --insecure, so pass --insecure."
    trusted = (f"the CA bundle {credentials.ca_path}" if credentials.ca_path
               else "the CA bundle given" if credentials.ca else "only the system's CAs")
    ca = "pass --ca DATA_DIR/ca-bundle.crt (or set $JOBPLANE_CA) with the server's CA bundle"
    if "certificate_verify_failed" in text:
        return f"The server's certificate is not signed by a CA this client trusts ({trusted}): {ca}."
    return (f"This client used TLS, trusting {trusted}: if the server's certificate comes from its built-in CA, "
            f"{ca}; if the server runs with --insecure, pass --insecure.")


# Channels


def open_channel(target: str, credentials: Credentials | None = None) -> grpc.Channel:
    """A blocking channel to the server: TLS with `credentials`, plaintext if they are insecure.

    No credentials at all means plaintext, as before security existed: callers that want TLS
    pass `locate_credentials(target, …)`.
    """
    if credentials is None or credentials.insecure:
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.secure_channel(target, credentials.channel_credentials(), options=CHANNEL_OPTIONS)


def open_aio_channel(target: str, credentials: Credentials | None = None, *,
                     options: list[tuple[str, int]] = CHANNEL_OPTIONS) -> grpc.aio.Channel:
    """An asyncio channel to the server; `credentials` as for `open_channel`."""
    if credentials is None or credentials.insecure:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, credentials.channel_credentials(), options=options)

