"""`jobplane providers list|get|drain|resume|revoke`: the agents that run tasks."""

from __future__ import annotations

import argparse

from jobplane.client import output
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.client.flags import name_fields
from jobplane.v1 import provider_pb2


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("providers", help="list and inspect providers (agents)", description="Providers.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list providers", description="List providers.")
    listing.add_argument(
        "--filter",
        default="",
        metavar="F",
        help="space-separated key=value terms, all must hold; keys: state, label.KEY "
        "(e.g. `state=ACTIVE label.gpu=true`)",
    )
    listing.set_defaults(run=run_list)

    get = actions.add_parser("get", help="show one provider and its machine", description="Show one provider.")
    get.add_argument("provider", metavar="PROVIDER", help="provider id (the agent's name)")
    get.set_defaults(run=run_get)

    drain = actions.add_parser("drain", help="stop new work to a provider and move its tasks off it",
                               description="Drain a provider: no new work; its running tasks are handed on to "
                               "other providers now, or with --wait allowed to finish first.")
    drain.add_argument("provider", metavar="PROVIDER", help="provider id (the agent's name)")
    drain.add_argument("--wait", action="store_true", help="let running tasks finish instead of handing them on")
    drain.add_argument("--deadline", type=float, default=0.0, metavar="SECONDS",
                       help="with --wait: hand on whatever still runs after this long (default: no limit)")
    drain.set_defaults(run=run_drain)
    name_fields(drain, {"deadline_seconds": "--deadline"})

    resume = actions.add_parser("resume", help="let a drained provider take work again",
                                description="Resume a drained provider: it takes work again, at once if it is "
                                "connected, else once its agent connects. A drain lasts until this, across "
                                "restarts of the server and the agent.")
    resume.add_argument("provider", metavar="PROVIDER", help="provider id (the agent's name)")
    resume.set_defaults(run=run_resume)

    revoke = actions.add_parser("revoke", help="disconnect a provider for good and move its tasks off it",
                                description="Revoke a provider: its stream is closed, its running tasks are "
                                "handed on to other providers, and it may not connect again.")
    revoke.add_argument("provider", metavar="PROVIDER", help="provider id (the agent's name)")
    revoke.add_argument("--reason", default="", help="why; recorded in the provider's event")
    revoke.set_defaults(run=run_revoke)
    name_fields(revoke, {"reason": "--reason"})

    for parser in (listing, get, drain, resume, revoke):
        add_server_option(parser)
        add_output_option(parser)


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        providers = list(client.list_providers(filter=args.filter))
    if wants_json(args):
        print(output.json_document(providers))
    elif providers:
        print(provider_table(providers))
    else:
        print("no providers; start agents with `jobplane up` or `jobplane-agent --server ADDR`")
    return EXIT_OK


def run_drain(args: argparse.Namespace) -> int:
    with connect(args) as client:
        provider = client.drain_provider(args.provider, wait=args.wait, deadline=args.deadline)
    return _print_state(args, provider)


def run_resume(args: argparse.Namespace) -> int:
    with connect(args) as client:
        provider = client.resume_provider(args.provider)
    return _print_state(args, provider)


def run_revoke(args: argparse.Namespace) -> int:
    with connect(args) as client:
        provider = client.revoke_provider(args.provider, reason=args.reason)
    return _print_state(args, provider)


def _print_state(args: argparse.Namespace, provider: provider_pb2.Provider) -> int:
    if wants_json(args):
        print(output.json_document(provider))
    else:
        print(f"provider {provider.id} is {output.provider_state(provider.state)}")
    return EXIT_OK


def run_get(args: argparse.Namespace) -> int:
    with connect(args) as client:
        provider = client.get_provider(args.provider)
    print(output.json_document(provider) if wants_json(args) else provider_details(provider))
    return EXIT_OK


def provider_table(providers: list[provider_pb2.Provider]) -> str:
    rows = (
        (
            provider.id,
            state_text(provider),
            output.slots_used(provider),
            _resources_used(provider),
            output.labels(provider.labels),
            output.age(provider.last_seen_time),
            f"{provider.heartbeat_interval_seconds:g}s",
            provider.facts.hostname,
        )
        for provider in providers
    )
    return output.table(("ID", "STATE", "SLOTS USED", "RESOURCES USED", "LABELS", "LAST SEEN", "PROMISED", "HOST"), rows)


def provider_details(provider: provider_pb2.Provider) -> str:
    facts = provider.facts
    return output.fields(
        [
            ("ID", provider.id),
            ("State", state_text(provider)),
            ("Slots used", output.slots_used(provider)),
            ("Resources used", output.capacity_use(provider)),
            ("Labels", output.labels(provider.labels)),
            ("Heartbeat", f"every {heartbeat:g}s" if (heartbeat := provider.heartbeat_interval_seconds) else None),
            ("Connected", output.moment(provider.connect_time)),
            ("Last seen", output.age(provider.last_seen_time)),
            ("Host", facts.hostname),
            ("OS / arch", f"{facts.os} {facts.arch}".strip()),
            ("CPUs", facts.cpu_count or None),
            ("Memory", f"{facts.memory_bytes / 2**30:.1f} GiB" if facts.memory_bytes else None),
            ("Python", facts.python_version),
            ("Containment", containment_text(provider)),
        ]
    )


def _resources_used(provider: provider_pb2.Provider) -> str:
    """In use of each resource, short: `cpus 4/8 mem 2G/16G lic 1/1`; `-` when not advertised."""
    if not provider.HasField("capacity"):
        return "-"
    return output.capacity_use(provider).replace(", ", " ")


def state_text(provider: provider_pb2.Provider) -> str:
    """The state (and whether it is drained, when the state does not say so), and while a
    restart grace runs for it, when that ends."""
    state = output.provider_state(provider.state)
    if provider.drained and provider.state not in (provider_pb2.PROVIDER_STATE_DRAINING,
                                                   provider_pb2.PROVIDER_STATE_DRAINED):
        state = f"{state} (drained)"
    if provider.HasField("restart_grace_until") and provider.state == provider_pb2.PROVIDER_STATE_SUSPECT:
        return f"{state} (restart grace ends {output.until(provider.restart_grace_until)})"
    return state


def containment_text(provider: provider_pb2.Provider) -> str | None:
    """How its attempts are contained, and how soon a lost agent's attempts are certainly killed."""
    if not provider.containment:
        return None
    if provider.kill_deadline_seconds:
        return (f"{provider.containment}; a lost agent's attempts are killed within the reconnect grace "
                f"+ {provider.kill_deadline_seconds:g}s")
    return provider.containment
