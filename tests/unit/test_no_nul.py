"""check_no_nul passes a request whose encoding has no zero byte without walking it (a big
job's submit): a NUL is still found and named wherever it is, beside zero bytes or not."""

from __future__ import annotations

import pytest

from jobplane.server.errors import InvalidArgument
from jobplane.server.services.base import check_no_nul
from jobplane.v1 import job_pb2


def test_a_nul_is_named_beside_zero_bytes_and_a_request_without_either_passes() -> None:
    tasks = [job_pb2.TaskSpec(name=f"t{i}", python="m:f") for i in range(50)]
    request = job_pb2.SubmitJobRequest(spec=job_pb2.JobSpec(name="j", tasks=tasks))
    check_no_nul(request)
    request.spec.tasks[3].timeout_seconds = 5.0  # 0x4014000000000000: zero bytes, no NUL
    check_no_nul(request)
    request.spec.tasks[7].env["K"] = "a\x00b"
    with pytest.raises(InvalidArgument, match=r"spec\.tasks\[7\]\.env\['K'\]"):
        check_no_nul(request)
    request.spec.tasks[3].ClearField("timeout_seconds")  # the NUL's own zero byte: walked, not passed
    with pytest.raises(InvalidArgument, match=r"spec\.tasks\[7\]\.env\['K'\]"):
        check_no_nul(request)
