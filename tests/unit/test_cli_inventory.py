"""`jobplane inventory list|scan` and the SDK calls under them, over a real gRPC channel to a scripted
InventoryService: filters from flags, paging, the table, signature files and lines of rejected fields."""

from __future__ import annotations

import asyncio
import json
import re
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from jobplane.client import AsyncClient, Client
from jobplane.client.cli import build_parser, main
from jobplane.client.cmd_inventory import entry_details, inventory_filter, inventory_table, scan_summary
from jobplane.client.jobfile_signatures import signature_structs
from jobplane.v1 import inventory_pb2, inventory_pb2_grpc

NOW = 1_700_000_000
PAGE = 2  # the scripted server's largest page, so that three entries take two pages

SAMTOOLS = inventory_pb2.InventoryEntry(
    provider_id="gpu-1", signature_id="a1b2c3d4e5f60718", description="executable samtools >=1.10", present=True,
    details={"path": "/usr/bin/samtools", "version": "1.17"}, scan_time=Timestamp(seconds=NOW - 120),
    expire_time=Timestamp(seconds=NOW + 3600), source="piggyback",
)
REFERENCE = inventory_pb2.InventoryEntry(
    provider_id="gpu-1", signature_id="0f1e2d3c4b5a6978", description="file /data/ref.fa", present=True,
    details={"path": "/data/ref.fa", "size": str(3 * 2**30), "mtime": "1699990000.0"},
    scan_time=Timestamp(seconds=NOW - 5), expire_time=Timestamp(seconds=NOW - 1), source="request",
)
NO_CUDA = inventory_pb2.InventoryEntry(
    provider_id="cpu-1", signature_id="9988776655443322", description="env CUDA_HOME", present=False,
    reason="CUDA_HOME is not set in the agent's environment", scan_time=Timestamp(seconds=NOW - 7200),
    expire_time=Timestamp(seconds=NOW + 60), source="recheck",
)


class ScriptedInventory(inventory_pb2_grpc.InventoryServiceServicer):
    """Serves fixed entries in pages of at most PAGE; answers scans with one id per signature, or
    rejects them with `reject` as the server's INVALID_ARGUMENT message."""

    def __init__(self, entries: list[inventory_pb2.InventoryEntry], reject: str = "") -> None:
        self.entries = entries
        self.reject = reject
        self.filters: list[str] = []
        self.scans: list[inventory_pb2.ScanProviderRequest] = []

    def ListInventory(self, request, context):
        self.filters.append(request.filter)
        start = int(request.page_token or 0)
        end = start + min(request.page_size, PAGE)
        token = str(end) if end < len(self.entries) else ""
        return inventory_pb2.ListInventoryResponse(entries=self.entries[start:end], next_page_token=token)

    def ScanProvider(self, request, context):
        self.scans.append(request)
        if self.reject:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, self.reject)
        return inventory_pb2.ScanProviderResponse(signature_ids=[f"id{i}" for i in range(len(request.signatures))])


@pytest.fixture
def serve():
    servers = []

    def start(entries: list[inventory_pb2.InventoryEntry] = (), reject: str = "") -> tuple[str, ScriptedInventory]:
        inventory = ScriptedInventory(list(entries), reject)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        inventory_pb2_grpc.add_InventoryServiceServicer_to_server(inventory, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}", inventory

    yield start
    for server in servers:
        server.stop(None)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# Parsing and what is shown


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_list_flags_become_one_filter():
    args = parse("inventory", "list", "--provider", "gpu-1", "--signature", "a1b2", "--absent")
    assert inventory_filter(provider=args.provider, signature=args.signature, present=args.present) == (
        "provider=gpu-1 signature=a1b2 present=false")
    args = parse("inventory", "list", "--present")
    assert inventory_filter(provider=args.provider, signature=args.signature, present=args.present) == "present=true"
    args = parse("inventory", "list")
    assert inventory_filter(provider=args.provider, signature=args.signature, present=args.present) == ""


@pytest.mark.parametrize("argv", [
    ["inventory", "list", "--present", "--absent"],
    ["inventory", "scan", "--file", "sigs.toml"],  # --provider is required
    ["inventory", "scan", "--provider", "gpu-1"],  # --file is required
])
def test_bad_inventory_command_lines_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2


def test_inventory_commands_take_the_server_and_credential_options():
    for argv in (["inventory", "list"], ["inventory", "scan", "--provider", "p", "--file", "f.toml"]):
        args = parse(*argv, "--server", "h:1", "--token", "s", "--ca", "ca.pem", "-o", "json")
        assert (args.server, args.token, args.ca, args.output) == ("h:1", "s", "ca.pem", "json")


def test_the_table_shows_what_was_found_or_why_not_and_when():
    cells = [re.split(r"\s{2,}", line) for line in inventory_table([SAMTOOLS, REFERENCE, NO_CUDA], now=NOW).splitlines()]
    assert cells == [
        ["PROVIDER", "SIGNATURE", "WHAT", "PRESENT", "DETAILS", "SCANNED", "EXPIRES", "SOURCE"],
        ["gpu-1", "a1b2c3d4e5f60718", "executable samtools >=1.10", "yes", "1.17 /usr/bin/samtools", "2m ago", "in 1h",
         "piggyback"],
        ["gpu-1", "0f1e2d3c4b5a6978", "file /data/ref.fa", "yes", "/data/ref.fa 3.0 GiB", "5.0s ago", "1.0s ago",
         "request"],
        ["cpu-1", "9988776655443322", "env CUDA_HOME", "no", "CUDA_HOME is not set in the agent's environment",
         "2h ago", "in 1m", "recheck"],
    ]


@pytest.mark.parametrize(("details", "shown"), [
    ({"free_bytes": str(2**31), "total_bytes": str(2**33)}, "2.0 GiB free 8.0 GiB total"),
    ({"path": "/scratch", "free_bytes": "512"}, "/scratch 512 B free"),
    ({"host": "127.0.0.1", "port": "5432"}, "host=127.0.0.1, port=5432"),
    ({}, ""),
])
def test_details_are_short(details, shown):
    assert entry_details(inventory_pb2.InventoryEntry(present=True, details=details)) == shown


def test_a_scan_summary_pairs_each_id_with_its_signature_and_says_where_to_look():
    signatures = signature_structs([{"kind": "file", "path": "/data/ref.fa"}, {"kind": "port", "port": 5432}])
    assert scan_summary("gpu-1", signatures, ["id0", "id1"]).splitlines() == [
        "asked provider gpu-1 to scan 2 signatures:",
        "  id0  file /data/ref.fa",
        "  id1  port 5432",
        "see the results with `jobplane inventory list --provider gpu-1`",
    ]
    assert scan_summary("gpu-1", signatures, ["id0"]).splitlines()[1] == "  id0"  # ids no longer pair up


# Against the scripted service


def test_list_sends_the_filter_and_reads_every_page(serve, capsys):
    address, inventory = serve([SAMTOOLS, REFERENCE, NO_CUDA])

    code = main(["inventory", "list", "--provider", "gpu-1", "--present", "--server", address, "--insecure",
                 "-o", "json"])

    entries = json.loads(capsys.readouterr().out)
    assert code == 0
    assert inventory.filters == ["provider=gpu-1 present=true"] * 2  # two pages
    assert [entry["signature_id"] for entry in entries] == [e.signature_id for e in (SAMTOOLS, REFERENCE, NO_CUDA)]
    assert entries[2]["present"] is False and entries[0]["details"]["version"] == "1.17"


def test_an_empty_list_says_so_and_how_to_fill_it(serve, capsys):
    address, _ = serve()
    assert main(["inventory", "list", "--server", address, "--insecure"]) == 0
    assert "jobplane inventory scan --provider P" in capsys.readouterr().out
    assert main(["inventory", "list", "--absent", "--server", address, "--insecure"]) == 0
    assert capsys.readouterr().out.strip() == "no inventory entries match `present=false`"


def test_scan_sends_the_files_signatures_and_prints_their_ids(serve, tmp_path, capsys):
    address, inventory = serve()
    sigs = write(tmp_path / "sigs.toml", 'signatures = [\n  { kind = "file", path = "/data/ref.fa" },\n'
                 '  { kind = "executable", name = "samtools", version_args = ["--version"], version = ">=1.10" },\n]\n')

    code = main(["inventory", "scan", "--provider", "gpu-1", "--file", sigs, "--server", address, "--insecure"])

    assert code == 0
    (request,) = inventory.scans
    assert request.provider_id == "gpu-1"
    assert [json_format.MessageToDict(s) for s in request.signatures] == [
        {"kind": "file", "path": "/data/ref.fa"},
        {"kind": "executable", "name": "samtools", "version_args": ["--version"], "version": ">=1.10"},
    ]
    out = capsys.readouterr().out
    assert "  id1  executable samtools >=1.10" in out
    assert "jobplane inventory list --provider gpu-1" in out


def test_scan_with_json_output_gives_the_provider_and_ids(serve, tmp_path, capsys):
    address, _ = serve()
    sigs = write(tmp_path / "sigs.json", '[{"kind": "os", "value": "linux"}]')
    assert main(["inventory", "scan", "--provider", "p", "--file", sigs, "--server", address, "--insecure",
                 "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"provider_id": "p", "signature_ids": ["id0"]}


def test_a_signature_the_server_rejects_is_reported_at_its_line(serve, tmp_path, capsys):
    address, _ = serve(reject="signatures[1].version: '1.10' has no operator; write e.g. '==1.10' or '>=1.10'")
    sigs = write(tmp_path / "sigs.toml", 'signatures = [\n  { kind = "file", path = "/a" },\n'
                 '  { kind = "executable", name = "t", version_args = ["-V"], version = "1.10" },\n]\n')

    code = main(["inventory", "scan", "--provider", "p", "--file", sigs, "--server", address, "--insecure"])

    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"{sigs}:3: signatures[1].version: '1.10' has no operator; write e.g. '==1.10' or '>=1.10'")


def test_a_rejection_that_names_no_signature_is_not_pinned_on_the_file(serve, tmp_path, capsys):
    address, _ = serve(reject="provider_id: must not be empty")
    sigs = write(tmp_path / "sigs.toml", 'signatures = [{ kind = "os", value = "linux" }]\n')
    assert main(["inventory", "scan", "--provider", "", "--file", sigs, "--server", address, "--insecure"]) == 2
    assert capsys.readouterr().err.strip() == "jobplane: provider_id: must not be empty"


def test_a_malformed_signature_file_is_refused_before_sending(serve, tmp_path, capsys):
    address, inventory = serve()
    sigs = write(tmp_path / "sigs.toml", 'signatures = [\n  { path = "/a" },\n]\n')

    code = main(["inventory", "scan", "--provider", "p", "--file", sigs, "--server", address, "--insecure"])

    assert code == 2
    assert f"{sigs}:2: signatures[0].kind: missing" in capsys.readouterr().err
    assert inventory.scans == []


# The SDK twins


def test_the_blocking_and_async_clients_page_and_scan_alike(serve):
    address, inventory = serve([SAMTOOLS, REFERENCE, NO_CUDA])
    signatures = [{"kind": "env", "name": "HOME"}, {"kind": "arch", "value": "x86_64"}]

    with Client.connect(address, insecure=True) as client:
        listed = list(client.list_inventory(filter="provider=gpu-1", page_size=PAGE))
        ids = client.scan_provider("gpu-1", signatures)

    async def run_async():
        async with await AsyncClient.connect(address, insecure=True) as client:
            listed = [entry async for entry in client.list_inventory(filter="provider=gpu-1", page_size=PAGE)]
            return listed, await client.scan_provider("gpu-1", signatures)

    assert asyncio.run(run_async()) == (listed, ids)
    assert listed == [SAMTOOLS, REFERENCE, NO_CUDA] and ids == ["id0", "id1"]
    assert inventory.filters == ["provider=gpu-1"] * 4
    assert inventory.scans[0] == inventory.scans[1]
    assert [json_format.MessageToDict(s) for s in inventory.scans[0].signatures] == signatures
