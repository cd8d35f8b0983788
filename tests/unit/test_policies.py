import random

import pytest

from jobplane.server.domain.model import JobState, Status, TaskState
from jobplane.server.domain.policies import (
    DEFAULT_POLICY, MAX_RULES, Policy, normalize, parse_policy, policy_to_dict,
)
from jobplane.server.domain.status import job_status, task_status
from jobplane.server.errors import InvalidArgument

EMPTY = Policy("empty")


def policy(name, *rules):
    """A policy from (environment, when, status) triples."""
    return parse_policy("policy", {"name": name, "rules": [
        {"environment": env, "when": when, "status": status} for env, when, status in rules]})


# --- the default policy ----------------------------------------------------------------------

DEFAULT_CASES = [
    # process: state + exit_code / signal
    ("process", {"state": "exited", "exit_code": "0"}, Status.SUCCESS),
    ("process", {"state": "exited", "exit_code": "3"}, Status.FAILURE),
    ("process", {"state": "signaled", "signal": "SIGKILL"}, Status.FAILURE),
    ("process", {"state": "failed_to_start"}, Status.FAILURE),
    ("process", {"state": "cancelled", "signal": "SIGTERM"}, Status.CANCEL),
    ("process", {"state": "timed_out"}, Status.FAILURE),
    ("process", {"state": "running"}, Status.RUNNING),
    ("process", {"state": "queued"}, Status.WAITING),
    ("process", {"state": "prerequisite_missing", "missing": "0,2"}, Status.WAITING),
    # python: state + exception_type
    ("python", {"state": "returned"}, Status.SUCCESS),
    ("python", {"state": "raised", "exception_type": "ValueError"}, Status.FAILURE),
    ("python", {"state": "raised", "exception_type": "KeyboardInterrupt"}, Status.CANCEL),
    ("python", {"state": "crashed"}, Status.FAILURE),
    ("python", {"state": "cancelled"}, Status.CANCEL),
    ("python", {"state": "timed_out"}, Status.FAILURE),
    # external, mainframe style
    ("external", {"status": "ABEND", "specific": "S0C7"}, Status.FAILURE),
    ("external", {"status": "ABEND S0C4"}, Status.FAILURE),
    ("external", {"status": "JCL ERROR"}, Status.FAILURE),
    ("external", {"status": "REQUEUED"}, Status.RESTART),
    ("external", {"status": "HELD"}, Status.ON_HOLD),
    ("external", {"status": "EXECUTING", "queue": "BATCH"}, Status.RUNNING),
    ("external", {"status": "AWAITING EXECUTION"}, Status.WAITING),
    ("external", {"status": "ENDED OK"}, Status.SUCCESS),
    ("external", {"status": "CC 0000"}, Status.SUCCESS),
    ("external", {"status": "CC 0012"}, Status.FAILURE),
    # external, Unix-scheduler style
    ("external", {"status": "EXITED", "exit_code": "0"}, Status.SUCCESS),
    ("external", {"status": "EXITED", "exit_code": "1"}, Status.FAILURE),
    ("external", {"status": "EXITED"}, Status.FAILURE),
    ("external", {"status": "SUSPENDED"}, Status.ON_HOLD),
    ("external", {"status": "PENDING"}, Status.WAITING),
    ("external", {"status": "RUNNING"}, Status.RUNNING),
    ("external", {"status": "KILLED"}, Status.CANCEL),
]


@pytest.mark.parametrize("environment, raw, status", DEFAULT_CASES, ids=lambda v: str(v) if isinstance(v, dict) else v)
def test_default_policy_maps_built_in_and_example_raw_values(environment, raw, status):
    decision = normalize(environment, raw, user=None)
    assert decision.status == status
    assert decision.policy == "default"
    assert DEFAULT_POLICY.rules[decision.rule_index].status == status
    assert f"rules[{decision.rule_index}]" in decision.reason


@pytest.mark.parametrize("state", list(TaskState), ids=lambda s: s.name)
@pytest.mark.parametrize("attempt", [0, 1, 2, 3])
def test_default_policy_agrees_with_jobplanes_own_task_states(state, attempt):
    raw = {"state": state.name, "attempt": str(attempt)}
    assert normalize("jobplane", raw, user=None).status == task_status(state, attempt)


@pytest.mark.parametrize("state", list(JobState), ids=lambda s: s.name)
def test_default_policy_agrees_with_jobplanes_own_job_states(state):
    assert normalize("jobplane", {"state": state.name}, user=None).status == job_status(state)


def test_raw_values_of_one_environment_mean_nothing_in_another():
    assert normalize("process", {"status": "ABEND"}, user=None).status == Status.UNKNOWN
    assert normalize("external", {"state": "returned"}, user=None).status == Status.UNKNOWN  # python's word


# --- conditions --------------------------------------------------------------------------------

CONDITIONS = [
    # (condition, raw value, matches)
    ("ABEND", "ABEND", True),
    ("ABEND", "abend", False),  # case-sensitive
    ("ABEND", "ABEND ", False),
    ({"equals": "JCL ERROR"}, "JCL ERROR", True),
    ({"equals": 0}, "0", True),  # an integer compares as its decimal text
    ({"equals": ""}, "", True),
    ({"in": ["ABEND", "JCL ERROR"]}, "JCL ERROR", True),
    ({"in": ["ABEND", "JCL ERROR"]}, "HELD", False),
    ({"range": [1, 4]}, "1", True),  # inclusive
    ({"range": [1, 4]}, "4", True),
    ({"range": [1, 4]}, "4.5", False),
    ({"range": [1, 4]}, "0", False),
    ({"range": [0, 10]}, "007", True),
    ({"range": [0, 10]}, " 3 ", True),
    ({"range": [1, None]}, "255", True),
    ({"range": [float("-inf"), 0]}, "-3", True),
    ({"range": [None, None]}, "1e3", True),
    ({"range": [None, None]}, "n/a", False),  # not a number: no range holds
    ({"range": [None, None]}, "nan", False),
    ({"range": [None, None]}, "inf", False),
    ({"range": [0.5, 1.5]}, "1", True),
    ({"glob": "S0C*"}, "S0C7", True),
    ({"glob": "S0C*"}, "S0D7", False),
    ({"glob": "S0C*"}, "XS0C7", False),  # anchored at both ends
    ({"glob": "CC 000[04]"}, "CC 0004", True),
    ({"glob": "U?01"}, "U401", True),
]


@pytest.mark.parametrize("condition, value, matches", CONDITIONS, ids=repr)
def test_conditions(condition, value, matches):
    p = policy("p", ("x", {"code": condition}, "FAILURE"))
    rule = p.match("x", {"code": value})
    assert (rule is not None) == matches
    assert (normalize("x", {"code": value}, user=p).status == Status.FAILURE) == matches


QUEUE_AND_STATUS = policy("alice", ("external", {"queue": "PRINT", "status": "ABEND"}, "ON_HOLD"))


@pytest.mark.parametrize("raw, default, status", [
    ({"queue": "PRINT", "status": "ABEND", "specific": "S0C7"}, DEFAULT_POLICY, Status.ON_HOLD),
    ({"queue": "BATCH", "status": "ABEND"}, DEFAULT_POLICY, Status.FAILURE),  # only status: the default decides
    ({"queue": "BATCH", "status": "ABEND"}, EMPTY, Status.UNKNOWN),
    ({"queue": "PRINT", "status": "HELD"}, EMPTY, Status.UNKNOWN),  # only queue
    ({"status": "ABEND"}, EMPTY, Status.UNKNOWN),  # queue missing
], ids=["both", "status-only-default", "status-only", "queue-only", "queue-missing"])
def test_rule_on_two_raw_properties_needs_both(raw, default, status):
    assert normalize("external", raw, user=QUEUE_AND_STATUS, default=default).status == status


@pytest.mark.parametrize("environment, raw", [
    ("process", {"state": "zombie"}),
    ("process", {}),
    ("external", {"status": "ON FIRE", "queue": "PRINT"}),
    ("mystery", {"state": "exited", "exit_code": "0"}),
])
def test_unknown_raw_values_are_unknown_and_left_as_reported(environment, raw):
    before = dict(raw)
    decision = normalize(environment, raw, user=QUEUE_AND_STATUS, groups=[EMPTY])
    assert decision.status == Status.UNKNOWN
    assert (decision.policy, decision.rule_index) == ("", None)
    assert raw == before
    assert all(f"{name}={value!r}" in decision.reason for name, value in raw.items())
    assert "user 'alice', group 'empty', default 'default'" in decision.reason


# --- precedence --------------------------------------------------------------------------------

USER = policy("alice", ("external", {"status": "ABEND"}, "ON_HOLD"), ("*", {"status": "ODD"}, "INACTIVE"))
OPS = policy("ops", ("external", {"status": "ABEND"}, "RESTART"), ("external", {"status": "HELD"}, "WAITING"),
             ("process", {"state": "exited"}, "SUCCESS"))
DEV = policy("dev", ("external", {"status": "HELD"}, "RUNNING"), ("external", {"status": "JCL ERROR"}, "CANCEL"))


@pytest.mark.parametrize("environment, raw, user, groups, status, decided_by", [
    ("external", {"status": "ABEND"}, USER, [OPS, DEV], Status.ON_HOLD, "alice"),
    ("external", {"status": "ABEND"}, None, [OPS, DEV], Status.RESTART, "ops"),
    ("external", {"status": "HELD"}, USER, [OPS, DEV], Status.WAITING, "ops"),  # first group wins
    ("external", {"status": "HELD"}, USER, [DEV, OPS], Status.RUNNING, "dev"),
    ("external", {"status": "JCL ERROR"}, USER, [OPS, DEV], Status.CANCEL, "dev"),
    ("external", {"status": "REQUEUED"}, USER, [OPS, DEV], Status.RESTART, "default"),
    ("process", {"state": "exited", "exit_code": "0"}, USER, [DEV], Status.SUCCESS, "default"),
    ("process", {"state": "exited", "exit_code": "2"}, USER, [OPS], Status.SUCCESS, "ops"),
    ("python", {"status": "ODD"}, USER, [OPS], Status.INACTIVE, "alice"),  # "*" reaches every environment
    ("external", {"status": "NEVER SEEN"}, USER, [OPS, DEV], Status.UNKNOWN, ""),
])
def test_user_over_groups_over_default(environment, raw, user, groups, status, decided_by):
    decision = normalize(environment, raw, user=user, groups=groups)
    assert (decision.status, decision.policy) == (status, decided_by)
    if decided_by:
        level = "user" if decided_by == "alice" else "default" if decided_by == "default" else "group"
        assert decision.reason.startswith(f"{level} policy {decided_by!r} rules[{decision.rule_index}]")


def test_first_matching_rule_wins_across_wildcard_and_named_environments():
    p = policy("p", ("process", {"state": "exited", "exit_code": "9"}, "RESTART"),
               ("*", {"state": "exited"}, "INACTIVE"), ("process", {"state": "exited"}, "SUCCESS"))
    assert normalize("process", {"state": "exited", "exit_code": "9"}, user=p).rule_index == 0
    assert normalize("process", {"state": "exited", "exit_code": "0"}, user=p).rule_index == 1
    assert normalize("python", {"state": "exited"}, user=p).status == Status.INACTIVE


def test_catch_all_rule_for_one_environment_stops_the_fall_through():
    p = policy("quiet", ("external", {}, "UNKNOWN"))
    decision = normalize("external", {"status": "ABEND"}, user=p)
    assert (decision.status, decision.policy, decision.rule_index) == (Status.UNKNOWN, "quiet", 0)
    assert normalize("process", {"state": "signaled"}, user=p).status == Status.FAILURE


def test_indexed_matching_agrees_with_a_scan_of_every_rule():
    rng = random.Random(5)
    values = ["A", "B", "C", "7", "12", "S0C7"]
    conditions = ["A", {"in": ["B", "C"]}, {"range": [5, None]}, {"glob": "S0C*"}, {"in": ["A", "7"]}]
    rules = []
    for _ in range(120):
        names = rng.sample(["state", "status", "code"], rng.randint(1, 2))
        rules.append((rng.choice(["process", "external", "*"]), {n: rng.choice(conditions) for n in names},
                      rng.choice(list(Status.__members__))))
    rules = list({repr((r[0], sorted(r[1].items()))): r for r in rules}.values())  # no repeated (environment, when)
    p = policy("random", *rules)
    for _ in range(2000):
        environment = rng.choice(["process", "external", "python"])
        raw = {n: rng.choice(values) for n in rng.sample(["state", "status", "code"], rng.randint(0, 3))}
        expected = next((r for r in p.rules if r.environment in (environment, "*") and r.matches(raw)), None)
        assert p.match(environment, raw) == expected, (environment, raw)


# --- validation ----------------------------------------------------------------------------------

GOOD_RULE = {"environment": "external", "when": {"status": "ABEND"}, "status": "FAILURE"}


def with_rule(rule, index=3):
    """A policy whose rule `index` is `rule`, the others valid and different."""
    others = [{**GOOD_RULE, "when": {"status": f"OTHER {i}"}} for i in range(index)]
    return {"name": "ops", "rules": [*others, rule]}


def changed(**fields):
    return with_rule({**GOOD_RULE, **fields})


INVALID = [
    # (policy table, field, words in the message)
    (["rules"], "policy", "must be a table"),
    ({"rules": []}, "policy.name", "is missing"),
    ({"name": "", "rules": []}, "policy.name", "is not a name"),
    ({"name": "a b", "rules": []}, "policy.name", "is not a name"),
    ({"name": "ops", "rule": []}, "policy.rule", "did you mean 'rules'"),
    ({"name": "ops", "rules": {"a": 1}}, "policy.rules", "must be a list of rule tables"),
    ({"name": "ops", "rules": [GOOD_RULE] * (MAX_RULES + 1)}, "policy.rules", f"at most {MAX_RULES}"),
    (with_rule("FAILURE"), "policy.rules[3]", "must be a table"),
    (with_rule({"when": {"status": "X"}, "status": "FAILURE"}), "policy.rules[3].environment", "is missing"),
    (with_rule({"environment": "external", "when": {"status": "X"}}), "policy.rules[3].status", "is missing"),
    (changed(statsu="FAILURE"), "policy.rules[3].statsu", "did you mean 'status'"),
    (changed(status="FAILED"), "policy.rules[3].status", "did you mean 'FAILURE'"),
    (changed(status="BROKEN"), "policy.rules[3].status", "use one of RUNNING, FAILURE"),
    (changed(status=2), "policy.rules[3].status", "must be a string, got an integer"),
    (changed(property="colour"), "policy.rules[3].property", "unknown normalized property 'colour'"),
    (changed(property="priority_class"), "policy.rules[3].value", "is missing; add value = one of HIGH, NORMAL"),
    (changed(property="priority_class", value="HIGH"), "policy.rules[3].status", "is not for a rule setting"),
    (changed(value="HIGH"), "policy.rules[3].value", "is not for a rule setting status"),
    (with_rule({"environment": "slurm", "when": {"QOS": "x"}, "property": "priority_class", "value": "HIHG"}),
     "policy.rules[3].value", "did you mean 'HIGH'"),
    (changed(environment="my env"), "policy.rules[3].environment", "is not a name"),
    (changed(environment=["process"]), "policy.rules[3].environment", "must be a string"),
    (changed(when="ABEND"), "policy.rules[3].when", "must be a table"),
    (changed(environment="*", when={}), "policy.rules[3].when", "add a condition or name an environment"),
    (with_rule({"environment": "*", "status": "FAILURE"}), "policy.rules[3].when", "is empty"),
    (changed(when={f"p{i}": "x" for i in range(17)}), "policy.rules[3].when", "at most 16"),
    (changed(when={"status": ["ABEND"]}), "policy.rules[3].when.status", "a value or a table with one operator"),
    (changed(when={"status": True}), "policy.rules[3].when.status", "got a boolean"),
    (changed(when={"status": {}}), "policy.rules[3].when.status", "has 0 operators"),
    (changed(when={"status": {"equals": "A", "glob": "B*"}}), "policy.rules[3].when.status", "has 2 operators"),
    (changed(when={"status": {"equal": "A"}}), "policy.rules[3].when.status.equal", "did you mean 'equals'"),
    (changed(when={"status": {"equals": 1.5}}), "policy.rules[3].when.status.equals", "use range for numeric"),
    (changed(when={"status": {"equals": "A\x00"}}), "policy.rules[3].when.status.equals", "NUL"),
    (changed(when={"status": "x" * 1025}), "policy.rules[3].when.status", "at most 1024"),
    (changed(when={"status": {"in": "ABEND"}}), "policy.rules[3].when.status.in", "must be a list"),
    (changed(when={"status": {"in": []}}), "policy.rules[3].when.status.in", "has 0 values"),
    (changed(when={"status": {"in": ["A", None]}}), "policy.rules[3].when.status.in[1]", "got null"),
    (changed(when={"status": {"in": ["A", "B", "A"]}}), "policy.rules[3].when.status.in[2]", "repeats"),
    (changed(when={"exit_code": {"range": [5, 1]}}), "policy.rules[3].when.exit_code.range", "swap them"),
    (changed(when={"exit_code": {"range": [1]}}), "policy.rules[3].when.exit_code.range", "two numbers"),
    (changed(when={"exit_code": {"range": "1-5"}}), "policy.rules[3].when.exit_code.range", "two numbers"),
    (changed(when={"exit_code": {"range": [1, "5"]}}), "policy.rules[3].when.exit_code.range[1]", "a number"),
    (changed(when={"exit_code": {"range": [float("inf"), None]}}), "policy.rules[3].when.exit_code.range[0]",
     "no number satisfies"),
    (changed(when={"exit_code": {"range": [0, float("nan")]}}), "policy.rules[3].when.exit_code.range[1]",
     "give a finite number"),
    (changed(when={"specific": {"glob": ""}}), "policy.rules[3].when.specific.glob", "is empty"),
    (changed(when={"exit code": {"equals": 1.5}}), 'policy.rules[3].when["exit code"].equals', "must be a string"),
    (changed(when={"": "x"}), 'policy.rules[3].when[""]', "is not a raw property name"),
    (with_rule({**GOOD_RULE, "when": {"status": "OTHER 1"}, "status": "SUCCESS"}), "policy.rules[3]",
     "same environment and conditions as policy.rules[1]"),
]


@pytest.mark.parametrize("raw, field, words", INVALID, ids=[f"{i}-{case[1]}" for i, case in enumerate(INVALID)])
def test_invalid_policy_names_the_field_and_the_fix(raw, field, words):
    with pytest.raises(InvalidArgument) as caught:
        parse_policy("policy", raw)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_limits_and_leniency():
    assert len(parse_policy("policy", {"name": "ops", "rules": [
        {**GOOD_RULE, "when": {"status": str(i)}} for i in range(MAX_RULES)]}).rules) == MAX_RULES
    assert parse_policy("policy", {"name": "ops"}).rules == ()
    assert parse_policy("policy", changed(status=" on_hold ")).rules[3].status == Status.ON_HOLD
    same = {"status": "A", "queue": "B"}
    reordered = {"queue": "B", "status": "A"}
    with pytest.raises(InvalidArgument, match="same environment and conditions"):
        parse_policy("policy", {"name": "ops", "rules": [{**GOOD_RULE, "when": same}, {**GOOD_RULE, "when": reordered}]})


# --- storage -----------------------------------------------------------------------------------------

ROUND_TRIP = {"name": "alice@example.org", "rules": [
    {"environment": "external", "when": {"queue": {"glob": "PRT*"}, "status": {"in": ["ABEND", "JCL ERROR"]}},
     "status": "ON_HOLD"},
    {"environment": "process", "when": {"state": "exited", "exit_code": {"range": [1, None]}}, "status": "RESTART"},
    {"environment": "process", "when": {"state": "exited", "exit_code": {"range": [None, -1.5]}}, "status": "FAILURE"},
    {"environment": "python", "when": {}, "status": "UNKNOWN"},
    {"environment": "*", "when": {"weird key": "0"}, "status": "INACTIVE"},
]}


@pytest.mark.parametrize("p", [DEFAULT_POLICY, parse_policy("p", ROUND_TRIP), EMPTY], ids=lambda p: p.name)
def test_policy_to_dict_round_trips(p):
    table = policy_to_dict(p)
    assert parse_policy("stored", table) == p
    assert policy_to_dict(parse_policy("stored", table)) == table


def test_policy_to_dict_is_the_canonical_form():
    written = {"name": "ops", "rules": [
        {"environment": "process", "status": "failure",
         "when": {"exit_code": {"range": [1.0, float("inf")]}, "state": {"equals": "exited"}, "signal": 9}}]}
    assert policy_to_dict(parse_policy("policy", written)) == {"name": "ops", "rules": [
        {"environment": "process", "status": "FAILURE",
         "when": {"exit_code": {"range": [1, None]}, "state": "exited", "signal": "9"}}]}


# --- case, and the built-in vocabulary ---------------------------------------------------------

@pytest.mark.parametrize("raw, status", [
    ({"status": "Abend"}, Status.FAILURE), ({"status": "abend s0c7"}, Status.FAILURE),
    ({"status": "Requeued"}, Status.RESTART), ({"status": "JCL Error"}, Status.FAILURE),
    ({"status": "Failed"}, Status.FAILURE), ({"status": "Completed"}, Status.SUCCESS),
    ({"exit_code": "0"}, Status.SUCCESS), ({"exit_code": "2"}, Status.FAILURE),
    ({"status": "Ended Not OK"}, Status.FAILURE), ({"status": "Wait Condition"}, Status.WAITING),
    ({"status": "PEND"}, Status.WAITING), ({"status": "ususp"}, Status.ON_HOLD),
    ({"status": "Canceled"}, Status.CANCEL), ({"status": "up_for_retry"}, Status.RESTART),
    ({"status": "Disabled"}, Status.INACTIVE), ({"status": "something else"}, Status.UNKNOWN),
])
def test_the_default_policy_knows_the_usual_scheduler_words_in_any_case(raw, status):
    assert normalize("external", raw, user=None).status == status


def test_ignore_case_is_a_rule_option_off_unless_asked_and_it_survives_a_round_trip():
    exact = parse_policy("policy", {"name": "p", "rules": [
        {"environment": "external", "when": {"status": "ABEND"}, "status": "ON_HOLD"}]})
    folded = parse_policy("policy", {"name": "p", "rules": [
        {"environment": "external", "when": {"status": {"in": ["ABEND", "JCL ERROR"]}, "specific": {"glob": "S0C*"}},
         "status": "ON_HOLD", "ignore_case": True}]})
    assert normalize("external", {"status": "abend"}, user=exact).policy == "default", "the user rule is exact"
    assert normalize("external", {"status": "ABEND"}, user=exact).status == Status.ON_HOLD
    assert normalize("external", {"status": "abend", "specific": "s0c7"}, user=folded).status == Status.ON_HOLD
    assert normalize("external", {"status": "Jcl Error", "specific": "S0C4"}, user=folded).status == Status.ON_HOLD
    assert "(any case)" in folded.rules[0].description
    assert parse_policy("policy", policy_to_dict(folded)) == folded
    assert policy_to_dict(DEFAULT_POLICY)["rules"][0]["ignore_case"] is True
    with pytest.raises(InvalidArgument, match=r"policy.rules\[0\].ignore_case: must be true or false"):
        parse_policy("policy", {"name": "p", "rules": [
            {"environment": "external", "when": {"status": "X"}, "status": "FAILURE", "ignore_case": "yes"}]})


PRIORITY = {"name": "ops", "rules": [
    {"environment": "external", "when": {"queue": "PRINT"}, "property": "priority_class", "value": "low"},
    {"environment": "external", "when": {"queue": "PRINT"}, "status": "ON_HOLD"},
]}


def test_another_property_is_normalized_by_the_same_engine_on_its_own():
    ops = parse_policy("policy", PRIORITY)
    raw = {"queue": "PRINT", "status": "EXECUTING"}
    decided = normalize("external", raw, user=None, groups=[ops], property_name="priority_class")
    assert (decided.value, decided.policy, decided.rule_index) == ("LOW", "ops", 0)
    assert "-> priority_class LOW" in decided.reason
    status = normalize("external", raw, user=None, groups=[ops])
    assert (status.status, status.rule_index) == (Status.ON_HOLD, 1), "a priority-class rule never decides a status"
    assert policy_to_dict(ops)["rules"][0] == {"environment": "external", "when": {"queue": "PRINT"},
                                                "property": "priority_class", "value": "LOW"}
    assert parse_policy("policy", policy_to_dict(ops)) == ops


@pytest.mark.parametrize("environment, raw, value", [
    ("slurm", {"State": "RUNNING", "QOS": "normal"}, "NORMAL"),
    ("slurm", {"State": "PENDING", "QOS": "High"}, "HIGH"),
    ("slurm", {"State": "PENDING", "QOS": "scavenger"}, "LOW"),
    ("external", {"queue": "Night", "status": "PEND"}, "LOW"),
    ("external", {"queue": "priority", "status": "RUN"}, "HIGH"),
    ("external", {"queue": "somewhere", "status": "RUN"}, ""),  # no rule: nothing to say
])
def test_the_default_policy_reads_the_priority_class_of_the_usual_schedulers(environment, raw, value):
    assert normalize(environment, raw, user=None, property_name="priority_class").value == value


def test_an_attempt_lost_with_its_provider_reads_unknown_not_what_its_agent_said_last():
    # Ended with no outcome (engine.lose): jobplane's own raw state says LOST; a process or python
    # attempt's last report keeps its properties but its state says lost; an outside job's stays
    # as the scheduler said (the next attempt follows that job).
    from jobplane.server.domain.status import attempt_raw, ended_attempt_raw

    assert attempt_raw(2, True, 0, ended=True) == {"state": "LOST", "attempt": "2"}
    assert attempt_raw(2, True, 0) == {"state": "RUNNING", "attempt": "2"}  # (still out)
    assert normalize("jobplane", attempt_raw(2, True, 0, ended=True), user=None).status == Status.UNKNOWN
    lost = ended_attempt_raw("process", {"state": "running", "pid": "41"}, 0)
    assert lost == {"state": "lost", "pid": "41"} and normalize("process", lost, user=None).status == Status.UNKNOWN
    assert ended_attempt_raw("process", {"state": "exited", "exit_code": "0"}, 1) == {"state": "exited", "exit_code": "0"}
    assert ended_attempt_raw("external", {"status": "EXECUTING"}, 0) == {"status": "EXECUTING"}
