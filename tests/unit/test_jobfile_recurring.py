"""Job files with `schedule`: the recurring keys become a Schedule whose job is the rest of the
file; their shape is checked at their lines; server messages about them point back there."""

import pytest

from jobplane.client.errors import JobFileError
from jobplane.client.jobfile import parse_job_file
from jobplane.v1 import schedule_pb2

JOB = '[[tasks]]\nname = "t"\ncommand = ["true"]\n'


def test_a_file_with_a_schedule_makes_one_whose_job_is_the_rest():
    f = parse_job_file(f'name = "n"\nschedule = "0 2 * * *"\ntime_zone = "Europe/Berlin"\noverlap = "queue"\n'
                       f"catch_up = true\n{JOB}", name="n.toml")
    assert (f.schedule.cron, f.schedule.time_zone, f.schedule.overlap, f.schedule.catch_up) == (
        "0 2 * * *", "Europe/Berlin", schedule_pb2.OVERLAP_QUEUE, True)
    assert f.schedule.job.name == "n" and [t.name for t in f.schedule.job.tasks] == ["t"]
    assert f.spec == f.schedule.job


def test_a_file_without_one_is_a_plain_job():
    assert parse_job_file(f'name = "n"\n{JOB}').schedule is None


@pytest.mark.parametrize("keys, problem", [
    ('overlap = "skip"', 'n.toml:2: overlap: only means something with `schedule`'),
    ('schedule = 5', "n.toml:2: schedule: expected a cron expression as a string"),
    ('schedule = "* * * * *"\noverlap = "never"', 'n.toml:3: overlap: expected one of "skip", "queue", "allow"'),
    ('schedule = "* * * * *"\ncatch_up = "yes"', "n.toml:3: catch_up: expected true or false"),
])
def test_bad_recurring_keys_are_located(keys, problem):
    with pytest.raises(JobFileError) as caught:
        parse_job_file(f'name = "n"\n{keys}\n{JOB}', name="n.toml")
    assert problem in str(caught.value)


def test_server_messages_about_the_schedule_point_at_its_keys():
    f = parse_job_file(f'name = "n"\nschedule = "0 25 * * *"\ntime_zone = "X"\n{JOB}', name="n.toml")
    assert str(f.locate('schedule.cron: "0 25 * * *": hour 25 is out of range 0-23')) == \
        'n.toml:2: schedule: "0 25 * * *": hour 25 is out of range 0-23'
    assert str(f.locate("schedule.time_zone: 'X' is not a known IANA time zone")).startswith("n.toml:3: time_zone:")
    assert str(f.locate("schedule.job.tasks[0].command: empty")).startswith("n.toml:6: tasks[0].command")
