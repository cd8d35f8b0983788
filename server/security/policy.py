"""Authorization, in one place: which roles may call which method, and who a caller is."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from enum import IntEnum

from ..errors import PermissionDenied


class Role(IntEnum):
    """Equal to jobplane.v1.Role."""

    ADMIN = 1
    OPERATOR = 2
    SUBMITTER = 3
    VIEWER = 4
    AGENT = 5


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the server established it (never from the request)."""

    identity: str
    role: Role
    groups: tuple[str, ...] = ()
    method: str = "token"  # "token", "certificate" or "insecure"
    serial: int = 0  # the certificate's serial, for certificate callers
    forwarded_by: str = ""  # the replica that authenticated the caller and forwarded its call here

    def sees_all_jobs(self) -> bool:
        """Admins, operators and viewers see every job; submitters only their own."""
        return self.role in (Role.ADMIN, Role.OPERATOR, Role.VIEWER)


INSECURE = Caller("insecure", Role.ADMIN, method="insecure")
ANONYMOUS = Caller("anonymous", Role.VIEWER, method="none")

# The caller of the RPC being handled; set by the interceptor for the handler's task.
current_caller: ContextVar[Caller] = ContextVar("jobplane_caller", default=ANONYMOUS)

USERS = (Role.ADMIN, Role.OPERATOR, Role.SUBMITTER, Role.VIEWER)
SUBMIT = (Role.ADMIN, Role.OPERATOR, Role.SUBMITTER)
READ = USERS
OPERATE = (Role.ADMIN, Role.OPERATOR)
OBSERVE = (Role.ADMIN, Role.OPERATOR, Role.VIEWER)
ADMIN = (Role.ADMIN,)
AGENT = (Role.AGENT,)
PUBLIC = None  # no credential needed (the request carries its own, or there is nothing to protect)

_V1 = "/jobplane.v1."
# method -> roles allowed; a method missing here is refused (deny by default).
ROLES: dict[str, tuple[Role, ...] | None] = {
    f"{_V1}JobService/SubmitJob": SUBMIT,
    f"{_V1}JobService/CancelJob": SUBMIT,
    f"{_V1}JobService/HoldJob": SUBMIT,  # submitters: their own jobs (tenancy)
    f"{_V1}JobService/ReleaseJob": SUBMIT,
    f"{_V1}JobService/RerunJob": SUBMIT,  # submitters: their own jobs (tenancy)
    f"{_V1}JobService/PurgeJobs": ADMIN,
    f"{_V1}ConflictService/ListConflictRules": READ,
    f"{_V1}ServerService/ListServers": READ,
    f"{_V1}ConflictService/CreateConflictRule": OPERATE,
    f"{_V1}ConflictService/DeleteConflictRule": OPERATE,
    f"{_V1}ConflictService/CheckConflicts": READ,
    f"{_V1}ConflictService/SuggestConflicts": OBSERVE,
    f"{_V1}JobService/GetJob": READ,
    f"{_V1}JobService/ListJobs": READ,
    f"{_V1}JobService/SummarizeJobs": READ,
    f"{_V1}JobService/WatchEvents": READ,  # deprecated: EventService/WatchEvents
    f"{_V1}EventService/WatchEvents": READ,
    f"{_V1}TaskService/ListTasks": READ,
    f"{_V1}TaskService/GetTask": READ,
    f"{_V1}TaskService/StreamLogs": READ,  # submitters: their own jobs' tasks (tenancy)
    f"{_V1}ProviderService/Connect": AGENT,
    f"{_V1}ProviderService/ListProviders": READ,
    f"{_V1}ProviderService/GetProvider": READ,
    f"{_V1}ProviderService/DrainProvider": OPERATE,
    f"{_V1}ProviderService/ResumeProvider": OPERATE,
    f"{_V1}ProviderService/RevokeProvider": OPERATE,
    f"{_V1}ContinuationService/ListContinuations": OBSERVE,
    f"{_V1}ContinuationService/GetContinuation": OBSERVE,
    f"{_V1}ContinuationService/WatchContinuations": OBSERVE,
    f"{_V1}ContinuationService/PlanContinuation": OPERATE,
    f"{_V1}PolicyService/GetPolicy": READ,
    f"{_V1}PolicyService/ListPolicies": READ,
    f"{_V1}PolicyService/ListPolicyVersions": READ,
    f"{_V1}PolicyService/TestPolicy": READ,
    f"{_V1}PolicyService/SetPolicy": READ,  # submitters and viewers: their own user policy only
    f"{_V1}PolicyService/DeletePolicy": READ,
    f"{_V1}ViewService/SaveView": READ,  # each user's own views
    f"{_V1}ViewService/GetView": READ,
    f"{_V1}ViewService/ListViews": READ,
    f"{_V1}ViewService/DeleteView": READ,
    f"{_V1}InventoryService/ListInventory": OBSERVE,
    f"{_V1}InventoryService/ScanProvider": OPERATE,
    f"{_V1}SecurityService/Enroll": PUBLIC,
    f"{_V1}SecurityService/RenewCertificate": AGENT,
    f"{_V1}SecurityService/CreateToken": ADMIN,
    f"{_V1}SecurityService/ListTokens": ADMIN,
    f"{_V1}SecurityService/RevokeToken": ADMIN,
    f"{_V1}SecurityService/ListAuditRecords": ADMIN,
    f"{_V1}SecurityService/GetAuthority": (*USERS, Role.AGENT),
    f"{_V1}SecurityService/WhoAmI": (*USERS, Role.AGENT),
    f"{_V1}ScheduleService/CreateSchedule": SUBMIT,  # submitters: their own schedules (tenancy)
    f"{_V1}ScheduleService/GetSchedule": READ,
    f"{_V1}ScheduleService/ListSchedules": READ,
    f"{_V1}ScheduleService/PauseSchedule": SUBMIT,
    f"{_V1}ScheduleService/ResumeSchedule": SUBMIT,
    f"{_V1}ScheduleService/RunScheduleNow": SUBMIT,
    f"{_V1}ScheduleService/DeleteSchedule": SUBMIT,
    f"{_V1}AlertService/CreateAlertRule": OPERATE,
    f"{_V1}AlertService/DeleteAlertRule": OPERATE,
    f"{_V1}AlertService/GetAlertRule": OBSERVE,  # rules see every job: not for submitters
    f"{_V1}AlertService/ListAlertRules": OBSERVE,
}
# Debugging aids stay open, as with any gRPC server: they reveal nothing about jobs.
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

# Calls that change something: each is recorded in the audit log.
MUTATING = frozenset({
    f"{_V1}JobService/SubmitJob", f"{_V1}JobService/CancelJob", f"{_V1}ProviderService/Connect",
    f"{_V1}ProviderService/DrainProvider", f"{_V1}ProviderService/RevokeProvider",
    f"{_V1}ProviderService/ResumeProvider", f"{_V1}JobService/RerunJob", f"{_V1}JobService/PurgeJobs",
    f"{_V1}SecurityService/Enroll", f"{_V1}SecurityService/RenewCertificate",
    f"{_V1}SecurityService/CreateToken", f"{_V1}SecurityService/RevokeToken",
    f"{_V1}PolicyService/SetPolicy", f"{_V1}PolicyService/DeletePolicy",
    f"{_V1}InventoryService/ScanProvider", f"{_V1}ViewService/SaveView", f"{_V1}ViewService/DeleteView",
    f"{_V1}JobService/HoldJob", f"{_V1}JobService/ReleaseJob",
    f"{_V1}ConflictService/CreateConflictRule", f"{_V1}ConflictService/DeleteConflictRule",
    f"{_V1}ScheduleService/CreateSchedule", f"{_V1}ScheduleService/PauseSchedule",
    f"{_V1}ScheduleService/ResumeSchedule", f"{_V1}ScheduleService/RunScheduleNow",
    f"{_V1}ScheduleService/DeleteSchedule",
    f"{_V1}AlertService/CreateAlertRule", f"{_V1}AlertService/DeleteAlertRule",
})


def is_public(method: str) -> bool:
    return method.startswith(OPEN_PREFIXES) or ROLES.get(method, ()) is None


def authorize(caller: Caller, method: str) -> None:
    """Raise PermissionDenied unless the caller's role may call the method."""
    allowed = ROLES.get(method, ())
    if allowed is None or method.startswith(OPEN_PREFIXES) or caller.role in allowed or caller is INSECURE:
        return
    if not allowed:
        raise PermissionDenied(f"{method} is not available to any caller")
    needed = " or ".join(role.name.lower() for role in allowed)
    raise PermissionDenied(f"{method.rsplit('/', 1)[1]} needs the role {needed}; "
                           f"{caller.identity} has {caller.role.name.lower()}")
