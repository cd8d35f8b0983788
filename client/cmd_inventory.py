"""`jobplane inventory list|scan`: which provider has which prerequisites, as its agent last found."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence

from google.protobuf import struct_pb2

from jobplane.client import output
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.client.errors import InvalidArgument, JobFileError
from jobplane.client.jobfile_signatures import SignatureFile, load_signature_file
from jobplane.client.sync import Client
from jobplane.v1 import inventory_pb2

# Details shown as sizes, and what follows the size.
_SIZES = (("size", ""), ("free_bytes", " free"), ("total_bytes", " total"))
# Fields that name what a signature looks for, in the order a label shows them.
_LABEL_FIELDS = ("name", "path", "port", "value", "version")


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser(
        "inventory",
        help="see which providers have which prerequisites; ask for a scan",
        description="Inventory: what each provider's agent found when it last scanned a prerequisite "
        "signature. A task with prerequisites goes only to providers that have them all.",
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list",
        help="list inventory entries",
        description="List inventory entries: per provider and signature, whether it was found, what was "
        "found or why not, when it was scanned and until when that holds.",
    )
    listing.add_argument("--provider", default="", metavar="P", help="only provider P (the agent's name)")
    listing.add_argument("--signature", default="", metavar="ID", help="only the signature with this id")
    presence = listing.add_mutually_exclusive_group()
    presence.add_argument("--present", dest="present", action="store_const", const=True,
                          help="only what was found")
    presence.add_argument("--absent", dest="present", action="store_const", const=False,
                          help="only what was not found")
    listing.set_defaults(run=run_list)

    scan = actions.add_parser(
        "scan",
        help="ask a provider to scan signatures now",
        description="Ask a provider's agent to scan the signatures in FILE now; the results show in "
        '`jobplane inventory list`. FILE is TOML, signatures = [{ kind = "file", path = "/data/ref.fa" }, '
        '...], or JSON, a list of signature objects or {"signatures": [...]}.',
    )
    scan.add_argument("--provider", required=True, metavar="P", help="provider id (the agent's name)")
    scan.add_argument("--file", required=True, metavar="FILE", help="signature file: .toml, or .json")
    scan.set_defaults(run=run_scan)

    for parser in (listing, scan):
        add_server_option(parser)
        add_output_option(parser)


def run_list(args: argparse.Namespace) -> int:
    query = inventory_filter(provider=args.provider, signature=args.signature, present=args.present)
    with connect(args) as client:
        entries = list(client.list_inventory(filter=query))
    if wants_json(args):
        print(output.json_document(entries))
    elif entries:
        print(inventory_table(entries))
    elif query:
        print(f"no inventory entries match `{query}`")
    else:
        print("no inventory yet; agents fill it in as they scan, or ask one with "
              "`jobplane inventory scan --provider P --file SIGNATURES.toml`")
    return EXIT_OK


def run_scan(args: argparse.Namespace) -> int:
    signature_file = load_signature_file(args.file)  # before connecting: a bad file never reaches a server
    with connect(args) as client:
        ids = scan(client, args.provider, signature_file)
    if wants_json(args):
        print(json.dumps({"provider_id": args.provider, "signature_ids": ids}, indent=2))
    else:
        print(scan_summary(args.provider, signature_file.signatures, ids))
    return EXIT_OK


def scan(client: Client, provider_id: str, signature_file: SignatureFile) -> list[str]:
    """Send the file's signatures; one the server rejects is reported at its line in the file."""
    try:
        return client.scan_provider(provider_id, signature_file.signatures)
    except InvalidArgument as error:
        problem = signature_file.locate(error.message)
        if problem is None:
            raise
        raise JobFileError([problem]) from error


def inventory_filter(*, provider: str = "", signature: str = "", present: bool | None = None) -> str:
    """The ListInventory filter for the command line's options, e.g. `provider=gpu-1 present=true`."""
    terms = [f"provider={provider}" if provider else "", f"signature={signature}" if signature else ""]
    if present is not None:
        terms.append(f"present={'true' if present else 'false'}")
    return " ".join(term for term in terms if term)


def inventory_table(entries: Sequence[inventory_pb2.InventoryEntry], *, now: float | None = None) -> str:
    rows = (
        (
            entry.provider_id,
            entry.signature_id,
            entry.description,
            "yes" if entry.present else "no",
            entry_details(entry),
            output.age(entry.scan_time, now=now),
            output.until(entry.expire_time, now=now),
            entry.source,
        )
        for entry in entries
    )
    headers = ("PROVIDER", "SIGNATURE", "WHAT", "PRESENT", "DETAILS", "SCANNED", "EXPIRES", "SOURCE")
    return output.table(headers, rows)


def entry_details(entry: inventory_pb2.InventoryEntry) -> str:
    """What was found, short (`1.17 /usr/bin/samtools`, `/data/ref.fa 3.1 GiB`), or why it was not."""
    if not entry.present:
        return entry.reason
    details = entry.details
    parts = [details[key] for key in ("version", "path") if details.get(key)]
    parts += [f"{output.size(number)}{suffix}" for key, suffix in _SIZES
              if (number := _number(details.get(key))) is not None]
    return " ".join(parts) or ", ".join(f"{key}={value}" for key, value in sorted(details.items()))


def scan_summary(provider_id: str, signatures: Sequence[struct_pb2.Struct], ids: Sequence[str]) -> str:
    """The ids the scan's results will show under, each with the signature it stands for."""
    labels = [signature_label(signature) for signature in signatures] if len(ids) == len(signatures) else []
    lines = [f"asked provider {provider_id} to scan {output.count(len(ids), 'signature')}:"]
    lines += [f"  {id_}  {label}".rstrip() for id_, label in zip(ids, labels or [""] * len(ids))]
    lines.append(f"see the results with `jobplane inventory list --provider {provider_id}`")
    return "\n".join(lines)


def signature_label(signature: Mapping[str, object]) -> str:
    """`executable samtools >=1.10`, `file /data/ref.fa`: the kind and what it names."""
    # `in` and `[]` only: a Struct passes for a Mapping but has no `get`.
    return " ".join(_plain(signature[key]) for key in ("kind", *_LABEL_FIELDS) if key in signature)


def _plain(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None
