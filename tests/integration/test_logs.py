"""Logs: one structured line per ingest and per job transition; never a secret or image bytes.

This test checks the lines of a representative run. The whole suite's logs (in-process records
and every photoslot process's output) are scanned once more at the end of the session by
tests/conftest.py (pytest_sessionfinish → tests/logscan.py).
"""
from __future__ import annotations

import pytest

from photoslot import slots
from tests import logscan
from tests.conftest import EMULATOR_KEY, FIXTURES, INGEST_PASSWORD, emulator_control
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")


def fields(line: str) -> dict:
    out = {}
    for part in line.split():
        if "=" in part:
            k, _, v = part.partition("=")
            out[k] = v
    return out


async def test_ingests_and_job_transitions_log_one_structured_line_each_without_secrets_or_image_bytes(
        make_cfg, pg_dsn, emulator, photo_bytes):
    start = logscan.mark()
    cfg = make_cfg(providers__turbotext__poll_interval_seconds=0.2)
    async with Studio(cfg, pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        await slots.configure(s.ctx.db, s.clock, "slot-002", actor="test", source="test", provider_id="turbotext",
                              operation_id="image_edit", settings_json={"prompt": "make it a watercolour"})
        ok = await s.ingest("slot-001", photo_bytes)
        tt = await s.ingest("slot-002", (FIXTURES / "dslr_portrait_orientation6.jpg").read_bytes())
        await emulator_control(emulator, fail_rate=1.0, fail_status=400)
        failed = await s.ingest("slot-001", photo_bytes)
        await emulator_control(emulator, fail_rate=0.0)
        wrong = await s.ingest("slot-001", photo_bytes, password=INGEST_PASSWORD + "-wrong")
    assert (ok[0], tt[0], failed[0], wrong[0]) == (200, 200, 502, 401)
    lines = logscan.since(start)
    ingests = [fields(x) for x in lines if "event=ingest " in x]
    assert [(i["slot"], i["status"]) for i in ingests] == [("slot-001", "200"), ("slot-002", "200"),
                                                           ("slot-001", "502")]
    assert all("ms" in i and "outcome" in i for i in ingests)
    # a wrong password gets no line of its own (a guesser makes thousands): it is in the guess report
    reports = [fields(x) for x in lines if "event=ingest_refused_before_password" in x]
    assert [(r["client"], r["wrong"]) for r in reports] == [("127.0.0.1", "1")]
    by_job = {}
    for x in lines:
        f = fields(x)
        if f.get("event", "").startswith("job_") and "job" in f:
            by_job.setdefault(f["job"], []).append(f)
    tt_job = tt[1]["X-Job-Id"]
    events = [f["event"] for f in by_job[tt_job]]
    # job_queued is logged once the INSERT returns; a worker of the same process, woken by the
    # INSERT's NOTIFY, may log job_processing a moment before it: the two come first, in either order
    assert sorted(events[:2]) == ["job_processing", "job_queued"] and events[-1] == "job_succeeded"
    done = next(f for f in by_job[tt_job] if f["event"] == "job_succeeded")
    assert done["provider"] == "turbotext" and done["attempt"] == "1"
    assert done["queueid"] and int(done["polls"]) >= 1 and int(done["total_ms"]) > 0 and "provider_ms" in done
    failed_job = [f for f in by_job[failed[1]["X-Job-Id"]] if f["event"] == "job_failed"][0]
    assert failed_job["reason"] == "provider_error" and failed_job["attempt"] == "1"
    assert logscan.find_leaks(lines) == []
    assert not any(EMULATOR_KEY in x or INGEST_PASSWORD in x for x in lines)


def test_the_leak_scanner_recognises_what_it_looks_for():
    # guard against a scanner that silently finds nothing
    data = (FIXTURES / "dslr_landscape.jpg").read_bytes()
    chunk = data[len(data) // 2 - (len(data) // 2) % 3:][:48]
    assert logscan.find_leaks([f"body={chunk!r}"])
    assert logscan.find_leaks([f"password={INGEST_PASSWORD}"])
    assert logscan.find_leaks([f"key={EMULATOR_KEY}"])
    assert logscan.find_leaks(["event=ingest slot=slot-001 status=200"]) == []
