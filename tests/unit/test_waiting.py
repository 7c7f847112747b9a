"""How a waiting ingest learns its job's end (jobs.DoneWaiters) and when the loop-lag probe runs
(server/lag.py): pure asyncio, no database."""
from __future__ import annotations

import asyncio

from photoslot.jobs import DoneWaiters
from photoslot.server.lag import LagMonitor


async def test_a_worker_of_the_same_process_hands_over_the_row_and_its_own_notification_is_not_waited_for():
    waiters = DoneWaiters()
    ev = waiters.register("job-1")
    waiters.expect("job-1")
    waiters.notify("job-1")  # the finalizing UPDATE's NOTIFY, before the worker has its row
    assert not ev.is_set()
    waiters.settle("job-1", {"id": "job-1", "status": "succeeded"}, b"result")
    assert ev.is_set()
    assert waiters.delivered("job-1") == ({"id": "job-1", "status": "succeeded"}, b"result")
    assert waiters.delivered("job-1") is None  # taken once


async def test_without_a_row_the_ingest_is_woken_to_read_the_job_itself():
    waiters = DoneWaiters()
    ev = waiters.register("job-2")
    waiters.expect("job-2")
    waiters.settle("job-2", None)  # someone else finalized first, or the database failed
    assert ev.is_set() and waiters.delivered("job-2") is None
    waiters.notify("job-2")  # later notifications wake as before
    assert ev.is_set()


async def test_another_process_finalizing_wakes_the_ingest_by_notification():
    waiters = DoneWaiters()
    ev = waiters.register("job-3")
    waiters.notify("job-3")
    assert ev.is_set() and waiters.delivered("job-3") is None
    waiters.unregister("job-3")
    waiters.settle("job-3", {"id": "job-3"})  # nobody waits any more: nothing kept
    assert waiters.delivered("job-3") is None


async def test_the_lag_probe_stops_when_no_shot_is_in_flight_and_starts_again_with_the_next():
    in_flight = {"n": 1}
    lag = LagMonitor(busy=lambda: in_flight["n"] > 0, urgent=lambda: False)
    lag.LINGER = 0.2
    lag.start()
    await asyncio.sleep(0.3)
    assert lag._task is not None  # a shot is in flight
    in_flight["n"] = 0
    await asyncio.sleep(0.6)
    assert lag._task is None and lag.seconds == 0.0  # idle: not probed
    in_flight["n"] = 1
    lag.wake()
    assert lag._task is not None
    await lag.stop()
    assert lag._task is None
    lag.wake()  # stopped for good (the app's clean-up): a late shot does not restart it
    assert lag._task is None
