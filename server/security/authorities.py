"""Which CA a server signs with, and where it lives:

- the operator's own (`--ca-cert/--ca-key`, the same files on every replica): nothing is stored;
- on a database replicas share (PostgreSQL), the built-in CA in table `jobplane_authority`: the
  first replica to start creates it, every other replica loads the same one;
- on SQLite (one server), the built-in CA in DATA_DIR/pki, as files.

A CA key in the database is unencrypted PEM, protected only by the database's access control:
whoever can read the jobplane database can sign certificates (a replica's too). Operators who
want the key off the database give every replica `--ca-cert/--ca-key` instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import ServerConfig
from ..errors import ConfigError
from ..store.security import SecurityStore, StoredAuthority
from .pki import CA_CERT, CA_KEY, Authority

log = logging.getLogger(__name__)

PKI_DIR = "pki"  # in the data directory: the server certificate, and the CA files on SQLite


def open_authority(config: ServerConfig, store: SecurityStore) -> Authority:
    """The CA this server signs with (created on the first start, rotated with --rotate-ca).
    Blocking: reads and writes files and the database; run it on the writer thread."""
    pki = config.data_dir / PKI_DIR
    try:
        if config.ca_cert is not None:
            return _given(config)
        if store.shared:
            return shared_authority(store, pki, rotate=config.rotate_ca)
        return _local(pki, rotate=config.rotate_ca)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def shared_authority(store: SecurityStore, pki: Path, *, rotate: bool = False) -> Authority:
    """The CA in the database, stored there first if no replica did yet: the one this data
    directory had (so the agents it enrolled stay trusted), else a new one. With `rotate`, the
    next generation, keeping the current one trusted. Safe against replicas starting together:
    each generation is stored once and whoever lost reads back the winner."""
    stored = store.authority()
    if stored is None:
        stored = store.offer_authority(1, *_first(pki).pem_pair())
        log.info("the CA is kept in the database (generation %d) for every replica", stored.generation)
    authority = _loaded(stored)
    if rotate:
        stored = store.offer_authority(stored.generation + 1, *authority.rotated().pem_pair())
        authority = _loaded(stored)
        log.info("rotated the CA stored in the database: generation %d, fingerprint %s; the previous CA "
                 "stays trusted; restart the other replicas so they trust the new one", stored.generation,
                 authority.fingerprint())
    return authority


def stored_authority(store: SecurityStore) -> Authority | None:
    """The CA the replicas on this database share, None if none is stored (yet)."""
    stored = store.authority()
    return None if stored is None else _loaded(stored)


def _given(config: ServerConfig) -> Authority:
    try:
        return Authority.from_files(config.ca_cert, config.ca_key)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--ca-cert/--ca-key: {exc}") from None


def _local(pki: Path, *, rotate: bool) -> Authority:
    authority = Authority.load_or_create(pki)
    if rotate:
        authority = authority.rotate(pki)
        log.info("rotated the CA: new fingerprint %s; the previous CA stays trusted", authority.fingerprint())
    return authority


def _first(pki: Path) -> Authority:
    if (pki / CA_CERT).exists() or (pki / CA_KEY).exists():
        log.info("storing the CA of %s in the database, for every replica", pki)
        return Authority.load_or_create(pki)
    return Authority.create()


def _loaded(stored: StoredAuthority) -> Authority:
    try:
        return Authority.from_pem(stored.cert_pem, stored.key_pem, stored.previous_pem)
    except ValueError as exc:
        raise ValueError(f"the CA stored in table jobplane_authority (generation {stored.generation}) does not "
                         f"load: {exc}; restore the table from a backup, or start with --ca-cert/--ca-key") from None
