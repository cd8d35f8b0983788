"""`jobplane submit --request-id`: running the command again makes no second job."""

from __future__ import annotations

import json
import uuid

from support import jobplane


def test_submit_with_a_request_id_twice_makes_one_job(sqlite_cluster, tmp_path):
    server = sqlite_cluster.server
    job_file, other = tmp_path / "job.toml", tmp_path / "other.toml"
    for path, name in ((job_file, "once"), (other, "other")):
        path.write_text(f'name = "{name}"\nwait_for_providers = true\n[[tasks]]\nname = "t"\ncommand = ["true"]\n')
    request_id = str(uuid.uuid4()).upper()  # as `uuidgen` prints it on some systems

    runs = [jobplane("submit", str(job_file), "--request-id", request_id, "--server", server.address, "-o", "json",
                     env=server.env()) for _ in range(2)]
    refused = jobplane("submit", str(other), "--request-id", request_id, "--server", server.address,
                       env=server.env())

    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    first, second = (json.loads(r.stdout) for r in runs)
    assert first["id"] == second["id"]
    assert "already submitted" not in runs[0].stderr
    assert f"request {request_id.lower()} was already submitted as job {first['id']}" in runs[1].stderr
    assert refused.returncode == 3 and f"--request-id: {request_id.lower()} was already used" in refused.stderr
    assert [j.id for j in sqlite_cluster.client.list_jobs()] == [first["id"]]


def test_a_repeated_request_id_says_the_job_was_made_before_and_names_it(sqlite_cluster, tmp_path):
    """The second `submit --request-id U` said "submitted job 1" as if it had made one."""
    server = sqlite_cluster.server
    job_file = tmp_path / "job.toml"
    job_file.write_text('name = "once"\nwait_for_providers = true\n[[tasks]]\nname = "t"\ncommand = ["true"]\n')
    request_id = str(uuid.uuid4())
    first, second = (jobplane("submit", str(job_file), "--request-id", request_id, "--server", server.address,
                              env=server.env()) for _ in range(2))
    assert first.returncode == 0 and first.stdout.startswith('submitted job 1 "once"'), first.stdout + first.stderr
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith(f'request {request_id} was already submitted as job 1 "once" ('), second.stdout
    assert "; nothing new submitted\n" in second.stdout
    assert [j.id for j in sqlite_cluster.client.list_jobs()] == ["1"]


def test_a_bad_request_id_is_refused_before_anything_is_sent(tmp_path):
    job_file = tmp_path / "job.toml"
    job_file.write_text('name = "j"\n[[tasks]]\nname = "t"\ncommand = ["true"]\n')
    r = jobplane("submit", str(job_file), "--request-id", "12345", "--server", "127.0.0.1:1", env={})
    assert r.returncode == 2
    assert "argument --request-id: '12345' is not a UUID" in r.stderr
