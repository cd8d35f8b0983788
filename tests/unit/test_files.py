"""The one atomic write (jobplane.files) that the server, the agent and the client share."""

from __future__ import annotations

import stat

import pytest

from jobplane.files import write_atomic


def test_a_write_replaces_the_file_whole_with_the_mode_asked_for(tmp_path):
    path = tmp_path / "key.pem"
    path.write_text("old")
    write_atomic(path, b"secret", mode=0o600)
    assert path.read_bytes() == b"secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_atomic(str(path), "text is UTF-8: é", durable=False)
    assert path.read_text(encoding="utf-8") == "text is UTF-8: é"
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"], "no temporary file is left"


def test_a_failed_write_leaves_what_was_there_and_no_temporary_file(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("kept")
    with pytest.raises(OSError):
        write_atomic(target, b"new")  # a non-empty directory cannot be replaced by a file
    assert (target / "inside").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
