"""Channel setup of the SDK and the CLI: where the server is (one address, or the comma-separated
addresses of its replicas), which credentials to present to each, and the channel that carries
them. What the agent shares with them (the target, the data directory's files, the channel
options) is in jobplane.connect."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from pathlib import Path

import grpc

from jobplane.client.credentials import Credentials
from jobplane.client.errors import InvalidArgument
from jobplane.connect import (  # noqa: F401 (some only re-exported, for the CLI and SDK users)
    ADMIN_TOKEN_FILE,
    CA_BUNDLE_FILE,
    CHANNEL_OPTIONS,
    DEFAULT_TARGET,
    MAX_MESSAGE_BYTES,
    ServerTarget,
    default_data_dir,
    locate_server,
    read_up_state,
    resolve_target,
    up_state_path,
)
from jobplane.replicas import split_addresses

log = logging.getLogger(__name__)


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

