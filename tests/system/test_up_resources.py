"""`jobplane up` hands its capacity flags to its local agents: `providers get` shows what they
advertise, and a job file's requests are packed into it."""

from __future__ import annotations

import json
import signal

from support import jobplane, start_up, submit_running


def test_up_agents_advertise_the_capacity_given_and_providers_get_shows_its_use(tmp_path):
    env = {"JOBPLANE_HOME": str(tmp_path)}
    go = tmp_path / "go"
    job_file = tmp_path / "licensed.toml"
    job_file.write_text(f'name = "licensed"\n[[tasks]]\nname = "t"\ncpus = 1.5\nmemory = "1GiB"\n'
                        f'resources = {{ license_x = 1 }}\n'
                        f'command = ["sh", "-c", "while [ ! -e {go} ]; do sleep 0.1; done"]\n')
    up = start_up(tmp_path, agents=1, extra=["--cpus", "3", "--memory", "4GiB", "--gpus", "0",
                                             "--resource", "license_x=2"])
    try:
        submit_running(job_file, env)
        shown = json.loads(jobplane("providers", "get", "local-1", "-o", "json", env=env).stdout)
        assert shown["capacity"] == {"cpus": 3, "memory_bytes": 4 * 2**30, "gpus": 0, "custom": {"license_x": 2}}
        assert shown["in_use"] == {"cpus": 1.5, "memory_bytes": 2**30, "gpus": 0, "custom": {"license_x": 1}}
        text = jobplane("providers", "get", "local-1", env=env).stdout
        assert "cpus 1.5/3, memory 1 GiB/4 GiB, gpus 0/0, license_x 1/2" in text, text
    finally:
        go.touch()
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0, up.stdout.read()
