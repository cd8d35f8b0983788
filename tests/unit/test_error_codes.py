"""The one table of what each server error is to a caller (server/errors.py)."""

import grpc

from jobplane.server import errors
from jobplane.server.services.base import status_code


def test_every_error_answers_with_a_real_status_and_never_unknown():
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.JobplaneError)]
    assert len(classes) >= 10
    for cls in classes:
        assert cls.code in grpc.StatusCode.__members__, cls
        assert cls.code not in ("OK", "UNKNOWN"), cls


def test_the_codes_callers_rely_on():
    assert status_code(errors.InvalidArgument("spec.name", "is empty")) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_code(errors.StoreFailure("disk full")) == grpc.StatusCode.UNAVAILABLE
    assert status_code(errors.EngineFailure("bug")) == grpc.StatusCode.INTERNAL
    assert status_code(errors.ConfigError("bad flag")) == grpc.StatusCode.INTERNAL


def test_details_are_cut_to_fit_a_header():
    assert errors.details(ValueError("short")) == "short"
    long = errors.details(ValueError("x" * 20000))
    assert len(long) <= errors.MAX_DETAILS and long.endswith("(20000 characters)")
