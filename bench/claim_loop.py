"""The queue alone: claim → finalize as fast as one process can, no provider and no files.

Started N times in parallel by `bench/run.py --scenarios claims` to measure how the claim query
(advisory lock + FOR UPDATE SKIP LOCKED + max_parallel count) scales across processes.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from photoslot import db as dbmod  # noqa: E402
from photoslot import jobs  # noqa: E402
from photoslot.clock import SystemClock  # noqa: E402
from photoslot.media import MediaStore  # noqa: E402


async def main(dsn: str, tasks: int, max_parallel: int) -> None:
    database = await dbmod.connect(dsn, pool_size=tasks + 2, apply_schema=False)
    media = MediaStore(Path(sys.argv[4]))
    clock = SystemClock()
    done = 0

    async def loop(i: int) -> None:
        nonlocal done
        worker = f"claim-bench-{i}"
        while True:
            job = await jobs.claim(database, provider_id="gemini", worker_id=worker, now=clock.now(),
                                   lease_seconds=30, max_parallel=max_parallel)
            if job is None:
                return
            await jobs.finalize_failure(database, media, job_id=job["id"], now=clock.now(), reason="cancelled",
                                        detail="claim benchmark")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(tasks)))
    print(json.dumps({"claimed": done, "seconds": time.perf_counter() - started}))
    await database.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
