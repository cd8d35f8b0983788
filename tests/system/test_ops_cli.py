"""Operators' everyday verbs from the CLI, on `jobplane up` as a user runs it: undrain
(`providers resume`) across a restart of `up`."""

from __future__ import annotations

import json
import signal

from support import jobplane, start_up


def provider_states(env: dict) -> dict[str, str]:
    r = jobplane("providers", "list", "-o", "json", env=env)
    assert r.returncode == 0, r.stderr
    return {p["id"]: p["state"] for p in json.loads(r.stdout)}


def test_a_drain_outlasts_a_restart_of_up_until_providers_resume(tmp_path):
    env = {"JOBPLANE_HOME": str(tmp_path)}
    up = start_up(tmp_path)
    try:
        r = jobplane("providers", "drain", "local-2", env=env)
        assert r.returncode == 0 and r.stdout == "provider local-2 is DRAINED\n", r.stdout + r.stderr
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0, up.stdout.read()
    up = start_up(tmp_path)  # comes up with one agent drained, as the operator left it
    try:
        assert provider_states(env) == {"local-1": "ACTIVE", "local-2": "DRAINED"}
        r = jobplane("providers", "resume", "local-2", env=env)
        assert r.returncode == 0 and r.stdout == "provider local-2 is ACTIVE\n", r.stdout + r.stderr
        assert provider_states(env)["local-2"] == "ACTIVE"
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0, up.stdout.read()
