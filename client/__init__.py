"""The jobplane client SDK: `Client` (blocking) and `AsyncClient` (asyncio), job files, typed errors.

    from jobplane.client import Client, load_job_file

    with Client.connect() as client:
        job = client.submit_job(load_job_file("hello.toml").spec)
        job = client.wait_job(job.id)

Methods return the `jobplane.v1` messages; failed calls raise a `JobplaneError` subclass.
`Client.connect` finds its credentials (token, CA bundle) as the CLI does: arguments, then
$JOBPLANE_TOKEN / $JOBPLANE_CA / $JOBPLANE_INSECURE, then the local `jobplane up`.

Given the addresses of several server replicas (`Client.connect("a:7070,b:7070,c:7070")`, or
the same in $JOBPLANE_SERVER), a client sends each call to the replica that answered last and
moves on to the next when one is unreachable: reads and submits are tried again there (`Retry`
says how often), other changes only when they certainly reached no server; a watch resumes on
another replica after the last event it delivered.
"""

from jobplane.grpc_core import cli_program, import_grpc

if cli_program():  # before anything imports grpc: the CLI's errors say what the C core would log
    import_grpc("NONE")

from jobplane.client import results
from jobplane.client.aio import AsyncClient
from jobplane.client.errors import (
    AlreadyExists,
    CredentialsError,
    DeadlineExceeded,
    FailedPrecondition,
    FileProblem,
    InvalidArgument,
    JobFileError,
    JobplaneError,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from jobplane.client.events import is_finished
from jobplane.client.jobfile import JobFile, job_spec_from_mapping, load_job_file, parse_job_file
from jobplane.client.retry import Retry
from jobplane.client.security import ROLES, parse_role
from jobplane.client.sync import Client

results.install()  # job.succeeded, task.output, ...: see results.py

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "Client",
    "CredentialsError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FileProblem",
    "InvalidArgument",
    "JobFile",
    "JobFileError",
    "JobplaneError",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ROLES",
    "ResourceExhausted",
    "Retry",
    "Unauthenticated",
    "Unavailable",
    "is_finished",
    "job_spec_from_mapping",
    "load_job_file",
    "parse_job_file",
    "parse_role",
]
