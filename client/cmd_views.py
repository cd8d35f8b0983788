"""`jobplane views save|list|show|delete`: your saved filters and sort orders."""

from __future__ import annotations

import argparse

from jobplane.client import output
from jobplane.client.cmd_jobs import job_table
from jobplane.client.cmd_tasks import task_table
from jobplane.client.command import (
    EXIT_OK,
    add_output_option,
    add_server_option,
    connect,
    wants_json,
)
from jobplane.client.flags import name_fields
from jobplane.client.views import NAMES, RESOURCES
from jobplane.v1 import view_pb2


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser(
        "views", help="save and reuse filters (your named views)",
        description="Named filters and sort orders, per user. Use one with `jobs list --view NAME`, "
        "`tasks list --view NAME`, `summary --view NAME` and `watch --view NAME`.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    save = actions.add_parser("save", help="save (or replace) a view", description="Save a view.")
    save.add_argument("name", metavar="NAME", help="letters, digits, - _ .")
    save.add_argument("--of", choices=sorted(RESOURCES), default="jobs", help="what it lists (default: jobs)")
    save.add_argument("--filter", default="", metavar="F", help="as for `jobs list --filter` / `tasks list --filter`")
    save.add_argument("--sort", default="", metavar="KEYS", help="as for `jobs list --sort`, e.g. `--sort=-submitted`")
    save.set_defaults(run=run_save)
    name_fields(save, {"view.filter": "--filter", "view.order_by": "--sort", "view.resource": "--of"})

    listing = actions.add_parser("list", help="list your views", description="List your views.")
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", help="show a view and what it lists now",
                              description="Show a view's definition, then the jobs or tasks it lists now.")
    show.add_argument("name", metavar="NAME")
    show.set_defaults(run=run_show)

    delete = actions.add_parser("delete", help="delete a view", description="Delete a view.")
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(run=run_delete)

    for parser in (save, listing, show, delete):
        add_server_option(parser)
        add_output_option(parser)


def run_save(args: argparse.Namespace) -> int:
    with connect(args) as client:
        view = client.save_view(args.name, resource=args.of, filter=args.filter, order_by=args.sort)
    print(output.json_document(view) if wants_json(args) else f"saved view {view.name} ({NAMES[view.resource]})")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        views = list(client.list_views())
    if wants_json(args):
        print(output.json_document(views))
    elif views:
        rows = ((v.name, NAMES.get(v.resource, "?"), v.filter, v.order_by, output.moment(v.update_time)) for v in views)
        print(output.table(("NAME", "OF", "FILTER", "SORT", "SAVED"), rows))
    else:
        print("no views yet; save one with `jobplane views save NAME --filter F`")
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    with connect(args) as client:
        view = client.get_view(args.name)
        if view.resource == view_pb2.VIEW_RESOURCE_TASKS:
            items = list(client.list_tasks(view=view.name))
        else:
            items = list(client.list_jobs(view=view.name))
    if wants_json(args):
        print(output.json_document(view))
        return EXIT_OK
    print(output.fields([("Name", view.name), ("Of", NAMES.get(view.resource)), ("Filter", view.filter),
                         ("Sort", view.order_by), ("Saved", output.moment(view.update_time))]))
    print()
    if not items:
        print(f"no {NAMES.get(view.resource)} match it now")
    elif view.resource == view_pb2.VIEW_RESOURCE_TASKS:
        print(task_table(items, with_job=True))
    else:
        print(job_table(items))
    return EXIT_OK


def run_delete(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.delete_view(args.name)
    if not wants_json(args):
        print(f"deleted view {args.name}")
    return EXIT_OK
