"""The domain's enums convert to the contract's by number; this keeps the two in step."""

import pytest

from jobplane.server.domain import model
from jobplane.v1 import job_pb2, provider_pb2, status_pb2, task_pb2, event_pb2


@pytest.mark.parametrize("domain, proto, prefix", [
    (model.JobState, job_pb2.JobState, "JOB_STATE_"),
    (model.TaskState, task_pb2.TaskState, "TASK_STATE_"),
    (model.ProviderState, provider_pb2.ProviderState, "PROVIDER_STATE_"),
    (model.Status, status_pb2.NormalizedStatus, "NORMALIZED_STATUS_"),
    (model.Outcome, provider_pb2.AttemptOutcome, "ATTEMPT_OUTCOME_"),
    (model.EventKind, event_pb2.EventKind, "EVENT_KIND_"),
    (model.ReportKind, provider_pb2.TaskReportKind, "TASK_REPORT_KIND_"),
])
def test_domain_enum_matches_proto(domain, proto, prefix):
    proto_values = {name[len(prefix):]: value for name, value in proto.items() if not name.endswith("UNSPECIFIED")}
    assert {m.name: m.value for m in domain} == proto_values
