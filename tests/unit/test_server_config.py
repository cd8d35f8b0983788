"""Every engine setting can be set from jobplane-server's command line, and bad values are refused."""

import dataclasses

import pytest

from jobplane.server.config import ServerConfig
from jobplane.server.domain.state import EngineConfig
from jobplane.server.main import parse_args


def test_every_engine_setting_reaches_the_engine_from_the_command_line():
    config = parse_args(["--retry-backoff", "2", "--retry-backoff-max", "30", "--terminate-grace", "9",
                         "--reconnect-grace", "3", "--restart-grace", "11", "--probe-deadline", "4",
                         "--heartbeat-tolerance", "5", "--standby-idle", "6"]).engine()
    assert (config.retry_backoff, config.retry_backoff_max, config.terminate_grace) == (2, 30, 9)
    assert (config.reconnect_grace, config.restart_grace, config.probe_deadline) == (3, 11, 4)
    assert (config.heartbeat_tolerance, config.standby_idle) == (5, 6)


def test_server_config_names_every_engine_field():
    """A new EngineConfig field must be added to ServerConfig too (and so to the flags)."""
    server_fields = {f.name for f in dataclasses.fields(ServerConfig)}
    engine_fields = {f.name for f in dataclasses.fields(EngineConfig)}
    assert engine_fields - server_fields == set()
    built = ServerConfig().engine()
    assert all(getattr(built, name) == getattr(ServerConfig(), name) for name in engine_fields)


@pytest.mark.parametrize("argv,named", [
    (["--retry-backoff", "5", "--retry-backoff-max", "1"], "--retry-backoff-max"),
    (["--terminate-grace", "0"], "--terminate-grace"),
    (["--terminate-grace", "inf"], "--terminate-grace"),
])
def test_bad_engine_settings_are_refused_by_name(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert named in capsys.readouterr().err
