"""What SubmitJob and GetJob answer: the whole job (its spec's tasks as stored), or with
`summary` the job without its tasks, which a caller polling for its state needs."""

from jobplane.client import NotFound

import pytest

SPEC = {
    "name": "answers", "priority": 3, "labels": {"team": "etl"}, "wait_for_providers": True,
    "tasks": [
        {"name": "prep", "command": ["true"], "env": {"A": "1"}, "timeout": 30, "max_attempts": 2},
        {"name": "work", "python": "jobplane.examples.funcs:square", "args": [3], "after": ["prep"],
         "retry_backoff": 2.5},
        {"name": "last", "command": ["echo", "done"], "cwd": "/tmp", "after": ["work"]},
    ],
}


def test_submit_answers_the_job_as_get_job_shows_it(cluster):
    submitted = cluster.client.submit_job(SPEC)
    stored = cluster.client.get_job(submitted.id)
    assert [t.name for t in submitted.spec.tasks] == ["prep", "work", "last"]
    assert submitted.spec == stored.spec  # every task field, as stored and read back
    assert (submitted.id, submitted.state, submitted.counts.total) == (stored.id, stored.state, 3)


def test_a_summary_is_the_job_without_its_tasks(cluster):
    cluster.add_agent("a")
    job = cluster.client.submit_job(SPEC)
    summary = cluster.client.get_job(job.id, summary=True)
    assert list(summary.spec.tasks) == []
    assert (summary.spec.name, dict(summary.spec.labels), summary.counts.total) == ("answers", {"team": "etl"}, 3)
    done = cluster.client.wait(job.id, timeout=60)  # polls summaries, answers the whole job
    assert done.counts.success == 3 and [t.name for t in done.spec.tasks] == ["prep", "work", "last"]
    ended = cluster.client.get_job(job.id, summary=True)
    assert (ended.state, ended.end_time, ended.counts.success) == (done.state, done.end_time, 3)


def test_a_summary_of_an_unknown_job_is_not_found(cluster):
    with pytest.raises(NotFound, match="job 999 not found"):
        cluster.client.get_job("999", summary=True)
