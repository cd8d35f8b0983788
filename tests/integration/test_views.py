"""Filters, sorting and saved views over jobs, tasks and events, with a real server and agent."""

from __future__ import annotations

from contextlib import closing

import grpc
import pytest

from jobplane.client import Client, InvalidArgument, NotFound
from jobplane.v1 import view_pb2, view_pb2_grpc
from support import admin_channel

FAILURE, SUCCESS = 2, 4
JOB, TASK = 1, 2


def _job(client, name, team, code, **extra):
    return client.submit_job({"name": name, "labels": {"team": team}, **extra,
                              "tasks": [{"name": "t", "command": ["sh", "-c", f"exit {code}"]}]})


@pytest.fixture
def three_jobs(cluster):
    """etl-ok (team etl, succeeds), web-bad (team web, exits 3), etl-bad (team etl, exits 4)."""
    cluster.add_agent("a1", slots=2)
    jobs = [_job(cluster.client, "etl-ok", "etl", 0), _job(cluster.client, "web-bad", "web", 3),
            _job(cluster.client, "etl-bad", "etl", 4)]
    return {j.spec.name: cluster.client.wait_job(j.id, timeout=60) for j in jobs}


def names(jobs) -> list[str]:
    return [j.spec.name for j in jobs]


def test_filters_over_labels_status_raw_provider_owner_and_time(cluster, three_jobs):
    c = cluster.client
    assert sorted(names(c.list_jobs(filter="label.team=etl"))) == ["etl-bad", "etl-ok"]
    assert sorted(names(c.list_jobs(filter="status=FAILURE"))) == ["etl-bad", "web-bad"]
    assert names(c.list_jobs(filter="status=FAILURE AND label.team=etl")) == ["etl-bad"]
    assert names(c.list_jobs(filter="label.team!=etl")) == ["web-bad"]
    assert len(list(c.list_jobs(filter="provider=a1 environment=process submitted>=-1h"))) == 3
    assert list(c.list_jobs(filter="provider=ghost")) == []
    assert list(c.list_jobs(filter="submitted<-1h")) == []
    owner = three_jobs["etl-ok"].owner
    assert len(list(c.list_jobs(filter=f'owner="{owner}"'))) == 3
    assert list(c.list_jobs(filter="owner=nobody")) == []
    # tasks of every job, by their raw properties as the environment reported them
    (task,) = c.list_tasks(filter="raw.exit_code=3 environment=process")
    assert task.job_id == three_jobs["web-bad"].id and dict(task.raw)["state"] == "exited"
    assert sorted(t.job_id for t in c.list_tasks(filter="raw.exit_code>0 label.team=etl")) == [
        three_jobs["etl-bad"].id]
    assert {t.exit_code for t in c.list_tasks(filter="status=FAILURE", order_by="-exit_code")} == {3, 4}
    assert [t.exit_code for t in c.list_tasks(filter="status=FAILURE", order_by="-exit_code")] == [4, 3]
    # the README's example: a task is submitted with its job
    assert sorted(t.exit_code for t in c.list_tasks(filter="raw.exit_code>0 submitted>=-1h")) == [3, 4]
    assert list(c.list_tasks(filter="raw.exit_code>0 submitted<-1h")) == []
    assert len(list(c.list_tasks(filter="submitted>=-1h", order_by="-submitted"))) == len(list(c.list_tasks()))


def test_sorting_by_normalized_status_and_by_labels(cluster, three_jobs):
    c = cluster.client
    by_status = list(c.list_jobs(order_by="status,name"))
    assert [(j.status, j.spec.name) for j in by_status] == [
        (FAILURE, "etl-bad"), (FAILURE, "web-bad"), (SUCCESS, "etl-ok")]
    assert names(c.list_jobs(order_by="-status,-name")) == ["etl-ok", "web-bad", "etl-bad"]
    by_team = list(c.list_jobs(order_by="-label.team,name", page_size=1))  # sorted in memory, one per page
    assert names(by_team) == ["web-bad", "etl-bad", "etl-ok"]


def test_pages_of_a_filter_checked_on_messages_hold_each_match_once(cluster):
    for i in range(7):
        cluster.client.submit_job({"name": f"j{i}", "wait_for_providers": True, "labels": {"k": str(i % 2)},
                                   "tasks": [{"name": "t", "command": ["true"]}]})
    odd = names(cluster.client.list_jobs(filter="label.k=1", page_size=2))
    assert odd == ["j5", "j3", "j1"]
    by_name = names(cluster.client.list_jobs(filter="label.k=0", order_by="name", page_size=3))
    assert by_name == ["j0", "j2", "j4", "j6"]


@pytest.mark.parametrize("text, field", [
    ("label.team=etl colour=red", "filter: position 15: unknown key 'colour'"),
    ("submitted>=last-week", "filter: position 11: submitted takes a time"),
])
def test_a_bad_filter_is_invalid_argument_with_its_position(cluster, text, field):
    with pytest.raises(InvalidArgument, match=field):
        list(cluster.client.list_jobs(filter=text))


def test_saved_views_in_list_summary_and_watch(cluster, three_jobs):
    c = cluster.client
    saved = c.save_view("failures", filter="status=FAILURE", order_by="name")
    assert (saved.name, saved.filter, saved.owner) == ("failures", "status=FAILURE", three_jobs["etl-ok"].owner)
    c.save_view("etl-tasks", resource="tasks", filter="label.team=etl status=FAILURE")
    assert [v.name for v in c.list_views()] == ["etl-tasks", "failures"]
    assert names(c.list_jobs(view="failures")) == ["etl-bad", "web-bad"]
    assert names(c.list_jobs(view="failures", filter="label.team=web")) == ["web-bad"], "the request narrows it"
    assert names(c.list_jobs(view="failures", order_by="-name")) == ["web-bad", "etl-bad"], "and may re-sort"
    assert {s.status: s.count for s in c.summarize_jobs(view="failures").counts} == {FAILURE: 2}
    (task,) = c.list_tasks(view="etl-tasks")
    assert task.job_id == three_jobs["etl-bad"].id
    with pytest.raises(InvalidArgument, match="view: 'etl-tasks' is a view of tasks"):
        list(c.list_jobs(view="etl-tasks"))
    seen = _watch(c, view="failures")  # a view of jobs passes their job events
    assert {(e.job_id, e.kind, e.status) for e in seen} == {
        (three_jobs["etl-bad"].id, JOB, FAILURE), (three_jobs["web-bad"].id, JOB, FAILURE)}
    seen = _watch(c, view="etl-tasks")  # a view of tasks: task events, its terms on them
    assert {(e.job_id, e.kind, e.status) for e in seen} == {(three_jobs["etl-bad"].id, TASK, FAILURE)}
    c.save_view("failures", filter="status=SUCCESS name=etl*")  # saving again replaces it
    assert names(c.list_jobs(view="failures")) == ["etl-ok"]
    c.delete_view("failures")
    with pytest.raises(NotFound, match="you have no view 'failures'"):
        list(c.list_jobs(view="failures"))


def _watch(client, **kwargs):
    """The stored events the watch passes, up to a sentinel: a failing etl job with exit code 4,
    which every filter here passes, submitted after the others finished. Sentinels are left out."""
    sentinel = client.wait_job(_job(client, "sentinel", "etl", 4).id, timeout=60)
    seen = []
    with closing(client.watch(timeout=30, **kwargs)) as events:
        for event in events:
            if event.job_id == sentinel.id:
                return [e for e in seen if e.job_id not in _sentinels(client)]
            seen.append(event)
    raise AssertionError("the watch ended before the sentinel")


def _sentinels(client):
    return {j.id for j in client.list_jobs(filter="name=sentinel")}


def test_views_are_validated_and_private(cluster, three_jobs):
    c = cluster.client
    with pytest.raises(InvalidArgument, match="view.filter: position 0: unknown key 'colour'"):
        c.save_view("bad", filter="colour=red")
    with pytest.raises(InvalidArgument, match="view.order_by: unknown key 'size'"):
        c.save_view("bad", order_by="size")
    with pytest.raises(InvalidArgument, match="name: 'a b': use 1 to 64 letters"):
        c.save_view("a b", filter="status=FAILURE")
    c.save_view("old", filter="submitted<-1h")
    with pytest.raises(InvalidArgument, match="view: 'old' cannot filter events: position 0: unknown key 'submitted'"):
        next(iter(c.watch(view="old", timeout=5)))
    secret = c.create_token("viewer", user="zed").secret
    with closing(Client.connect(cluster.server.address, token=secret, ca=cluster.server.ca)) as zed:
        with pytest.raises(NotFound):
            zed.get_view("old")
        assert list(zed.list_views()) == []


def test_watch_filter_keeps_only_matching_events(cluster, three_jobs):
    c = cluster.client
    seen = _watch(c, filter="type=TASK raw.exit_code=3,4")
    assert {(e.job_id, e.raw["exit_code"]) for e in seen} == {
        (three_jobs["web-bad"].id, "3"), (three_jobs["etl-bad"].id, "4")}
    with pytest.raises(InvalidArgument, match="filter: position 0: unknown key 'state'"):
        next(iter(c.watch(filter="state=RUNNING", timeout=5)))


def test_views_list_in_pages_by_name(sqlite_cluster):
    c = sqlite_cluster.client
    for name in ("c", "a", "b"):
        c.save_view(name, filter="status=FAILURE")
    with admin_channel(sqlite_cluster.server) as channel:
        stub = view_pb2_grpc.ViewServiceStub(channel)
        first = stub.ListViews(view_pb2.ListViewsRequest(page_size=2), timeout=10)
        last = stub.ListViews(view_pb2.ListViewsRequest(page_size=2, page_token=first.next_page_token), timeout=10)
    assert ([v.name for v in first.views], [v.name for v in last.views]) == (["a", "b"], ["c"])
    assert first.next_page_token and not last.next_page_token
    assert [v.name for v in c.list_views(page_size=1)] == ["a", "b", "c"]
    with admin_channel(sqlite_cluster.server) as channel, pytest.raises(grpc.RpcError) as err:
        view_pb2_grpc.ViewServiceStub(channel).ListViews(view_pb2.ListViewsRequest(page_token="nope"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token: not a token from a previous response" in err.value.details()
