"""Prerequisites on the agent: scans the server asks for (explicitly or on the side of an
assignment) are reported, and an assignment whose prerequisites are missing is not run."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from jobplane.agent.prerequisites import ScanQueue, signature_dict
from jobplane.agent.scan import ScanLimits
from jobplane.v1 import provider_pb2
from support_standin import DEADLINE, FINISHED, STARTED, report_kind, struct, to_scan, with_agent

# A scan that waits for the test must not be cut short by its limits.
PATIENT = ScanLimits(timeout=DEADLINE, version_timeout=DEADLINE)


def file_sig(path: Path, **want) -> dict:
    return {"kind": "file", "path": str(path), **want}


def test_struct_numbers_that_are_whole_become_ints():
    signature = struct({"kind": "port", "port": 5432, "size": 10.0, "min_mtime": 1.5,
                        "nested": {"sizes": [10, 2.5], "on": True}, "name": "x"})
    assert signature.fields["port"].number_value == 5432.0  # what arrives on the wire
    plain = signature_dict(signature)
    assert plain == {"kind": "port", "port": 5432, "size": 10, "min_mtime": 1.5,
                     "nested": {"sizes": [10, 2.5], "on": True}, "name": "x"}
    assert type(plain["port"]) is int and type(plain["size"]) is int
    assert type(plain["nested"]["sizes"][0]) is int and plain["nested"]["on"] is True


def test_a_signature_asked_for_twice_is_scanned_and_reported_once(tmp_path):
    here = tmp_path / "here.dat"
    here.write_text("x")

    async def main() -> provider_pb2.ScanReport:
        queue = ScanQueue()
        queue.request(to_scan({"a": file_sig(here), "b": file_sig(tmp_path / "gone")}))
        queue.request(to_scan({"a": file_sig(here)}))
        running = asyncio.create_task(queue.run())
        try:
            return await asyncio.wait_for(queue.next_report(), DEADLINE)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    report = asyncio.run(main())
    assert [(r.signature_id, r.present) for r in report.results] == [("a", True), ("b", False)]


def test_a_scan_request_is_answered_with_a_report_per_signature(tmp_path):
    here = tmp_path / "here.dat"
    here.write_bytes(b"0123456789")
    asked_at = time.time()

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        await stream.signal("ready")
        # The size travels as a double in the Struct; the scanner wants an int.
        stream.scan({"sig-here": file_sig(here, size=10), "sig-gone": file_sig(tmp_path / "gone")})
        return await stream.scan_report()

    report = with_agent(tmp_path, scenario)
    results = {result.signature_id: result for result in report.results}
    assert set(results) == {"sig-here", "sig-gone"}
    here_result, gone = results["sig-here"], results["sig-gone"]
    assert here_result.present and here_result.reason == ""
    assert (here_result.details["path"], here_result.details["size"]) == (str(here), "10")
    assert not gone.present and "gone" in gone.reason
    for result in report.results:
        assert asked_at - 1 <= result.scan_time.ToNanoseconds() / 1e9 <= time.time() + 1


def test_scans_on_the_side_of_an_assignment_do_not_hold_up_the_task(tmp_path):
    release = tmp_path / "release"
    tool = tmp_path / "bin" / "slowtool"
    tool.parent.mkdir()
    # Waits for the test to release it (bounded, so a failing test leaves no process behind).
    tool.write_text(f'#!/bin/sh\ni=0\n'
                    f'while [ ! -e "{release}" ] && [ $i -lt {int(DEADLINE * 100)} ]; do\n'
                    f'  sleep 0.01; i=$((i + 1))\n'
                    f'done\necho "slowtool 1.2.3"\n')
    tool.chmod(0o755)
    slow = {"kind": "executable", "name": str(tool), "version_args": ["--version"],
            "version": ">=1.2"}

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        stream.assign("1", command=["true"], scan={"slow": slow})
        await stream.report("1", STARTED)
        _, finished = await stream.report("1", FINISHED)
        unreported_while_running = stream.scan_reports.empty()  # the scan waits for `release`
        release.touch()
        return finished, unreported_while_running, await stream.scan_report()

    finished, unreported_while_running, report = with_agent(tmp_path, scenario, slots=1,
                                                            scan_limits=PATIENT)
    assert finished.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert unreported_while_running
    (result,) = report.results
    assert (result.signature_id, result.present) == ("slow", True)
    assert result.details["version"] == "1.2.3"


def test_an_assignment_whose_prerequisite_is_missing_is_not_run(tmp_path):
    here = tmp_path / "here.dat"
    here.write_bytes(b"0123456789")
    gone, also_gone = tmp_path / "gone", tmp_path / "also-gone"
    refused, ran = tmp_path / "refused-ran", tmp_path / "allowed-ran"

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        stream.assign("refused", command=["touch", str(refused)],
                      prerequisites=[file_sig(here), file_sig(gone), file_sig(also_gone)])
        refused_reports = await stream.reports_until("refused", FINISHED)
        stream.assign("allowed", command=["touch", str(ran)],
                      prerequisites=[file_sig(here, size=10)])
        allowed_reports = await stream.reports_until("allowed", FINISHED)
        return refused_reports, allowed_reports

    refused_reports, allowed_reports = with_agent(tmp_path, scenario)
    (report,) = refused_reports  # FINISHED, never STARTED
    assert report.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_FAILED
    assert dict(report.finished.raw) == {"state": "prerequisite_missing", "missing": "1,2"}
    assert report.finished.error.startswith("prerequisite missing: ") and str(gone) in report.finished.error
    assert not refused.exists()
    assert [report_kind(r) for r in allowed_reports] == [STARTED, FINISHED]
    assert allowed_reports[-1].finished.outcome == provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert ran.exists()
