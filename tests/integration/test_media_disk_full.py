"""A full media disk: ingest answers 503 with a clear reason and leaves no partial file.

A truly full filesystem needs a mount (root); instead the write limit of this process is lowered
with RLIMIT_FSIZE for the duration of the request, so the upload's write fails half-way with
EFBIG exactly where ENOSPC would hit — after part of the file is on disk. (Python ignores
SIGXFSZ, so the write raises instead of killing the process.) PostgreSQL runs in its own process
and is unaffected.
"""
from __future__ import annotations

import contextlib
import json
import sys

import pytest
from photoslot import jobs

from tests.integration.studio import Studio

pytestmark = [pytest.mark.usefixtures("clean_state"),
              pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")]


@contextlib.contextmanager
def file_size_limit(limit: int):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


async def test_an_upload_that_cannot_be_written_is_answered_503_storage_full_without_a_partial_file(
        make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        with file_size_limit(len(photo_bytes) // 2):
            status, headers, body = await s.ingest("slot-001", photo_bytes)
        answer = json.loads(body)
        assert status == 503 and answer["failure_reason"] == "storage_full"
        assert "disk is full" in answer["details"]
        assert headers.get("Retry-After") == "30"
        assert s.files("uploads") == []
        assert await jobs.list_recent(s.ctx.db, status=None, limit=5) == []  # no doomed job
        # space back: the next shot goes through
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200


async def test_a_result_that_cannot_be_written_fails_the_job_and_leaves_no_partial_result(make_cfg, pg_dsn,
                                                                                         photo_bytes):
    async with Studio(make_cfg(), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001", output_format="png")
        # the JPEG upload fits under the limit, the provider's result re-encoded as a 6 MP PNG does not
        with file_size_limit(len(photo_bytes) + 1024):
            status, headers, body = await s.ingest("slot-001", photo_bytes)
        answer = json.loads(body)
        assert status == 500 and answer["failure_reason"] == "internal_error", body[:300]
        assert "cannot store the result on the media disk" in answer["details"]
        assert s.files("uploads") == [] and s.files("results") == []
