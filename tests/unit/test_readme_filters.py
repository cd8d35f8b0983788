"""Every filter the README shows is one the server takes: each `--filter` example is parsed
with the keys of the list it is given to, as the server would."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from jobplane.server.domain.alerts import ALERT_FIELDS
from jobplane.server.domain.query import parse_filter
from jobplane.server.services.event_filters import EVENT_FIELDS
from jobplane.server.store.live import PROVIDER_FIELDS
from jobplane.server.store.queries import AUDIT_FIELDS, job_query, task_query

README = Path(__file__).resolve().parents[2] / "README.md"


def _examples() -> list[tuple[str, str]]:
    """(the command, its filter) for every `jobplane ... --filter F` in the README, in a code
    block or in the text, in a comment or not."""
    found = []
    text = README.read_text().replace("\n  ", " ")  # an example may wrap onto the next line
    for line in text.splitlines():
        command = re.search(r"jobplane (\w+)( \w+)*", line)
        if command is None:
            continue
        for match in re.finditer(r"--filter[ =](['\"])(.*?)\1", line):
            found.append((command.group(0), match.group(2)))
    return found


def _check(command: str, text: str) -> None:
    words = command.split()
    now = time.time()
    if words[1] == "jobs" or words[1] == "summary" or (words[1] == "views" and "--of" not in words):
        job_query(text, "", now)
    elif words[1] == "tasks" or (words[1] == "views" and "tasks" in words):
        task_query(text, "", now)
    elif words[1] == "watch":
        parse_filter(text, EVENT_FIELDS, now)
    elif words[1] == "providers":
        parse_filter(text, PROVIDER_FIELDS, now)
    elif words[1] == "audit":
        parse_filter(text, AUDIT_FIELDS, now)
    elif words[1] == "alerts":
        parse_filter(text, ALERT_FIELDS, now)
    else:
        pytest.fail(f"the README filters {words[1]!r}, which this test does not know: {command}")


EXAMPLES = _examples()


def test_the_readme_has_filter_examples():
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("command,text", EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_every_filter_in_the_readme_is_accepted(command: str, text: str):
    _check(command, text)
