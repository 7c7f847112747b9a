"""The stop's steps (photoslot/stopping.py): a step that overruns is cut off and named, the grace
ends early on a second signal, the bound caps every budget. No process here: the event loop only."""
from __future__ import annotations

import asyncio
import logging
import time

from photoslot.stopping import STOP_SLACK, Stop, describe


async def _stuck_in_a_query(forever: asyncio.Event) -> None:
    await forever.wait()


async def test_a_step_that_overruns_is_cut_off_and_named_and_the_exit_code_is_1(caplog):
    stop = Stop("serve", grace=2)
    stop.started = time.monotonic()
    forever = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="photoslot.runtime"):
        finished = await stop.step("closing the database", _stuck_in_a_query(forever), budget=0.2)
    assert finished is False
    assert stop.overdue == ["closing the database"] and stop.exit_code == 1
    line = next(r.getMessage() for r in caplog.records if "shutdown_overdue" in r.getMessage())
    assert 'step="closing the database"' in line and "Event.wait" in line  # where the step's task sleeps


async def test_a_step_that_finishes_in_time_leaves_the_exit_code_0():
    stop = Stop("work", grace=1)
    stop.started = time.monotonic()
    assert await stop.step("stopping the workers", asyncio.sleep(0.01), budget=1) is True
    assert stop.exit_code == 0 and stop.overdue == []


async def test_a_failing_step_is_logged_and_the_stop_goes_on(caplog):
    async def boom():
        raise ConnectionError("database went away")

    stop = Stop("serve", grace=1)
    stop.started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="photoslot.runtime"):
        assert await stop.step("closing the database", boom(), budget=1) is True
    assert "shutdown_step_failed" in caplog.text and "database went away" in caplog.text
    assert stop.exit_code == 0


async def test_no_budget_reaches_past_the_bound():
    stop = Stop("serve", grace=2)
    stop.started = time.monotonic() - (2 + STOP_SLACK)  # the bound has passed already
    began = time.monotonic()
    assert await stop.step("anything", asyncio.sleep(10), budget=30) is False
    assert time.monotonic() - began < 1.0


async def test_the_grace_ends_when_the_work_is_done_or_at_a_second_signal():
    stop = Stop("serve", grace=30)
    stop.started = time.monotonic()
    running: set = {asyncio.ensure_future(asyncio.sleep(0.1))}
    began = time.monotonic()
    await stop.grace_for(running, "shots")  # over as soon as the shot ends
    assert time.monotonic() - began < 5

    hung = asyncio.ensure_future(asyncio.Event().wait())
    asyncio.get_running_loop().call_later(0.2, stop.signalled, "SIGINT")
    stop.requested.set()  # the first signal came already
    began = time.monotonic()
    await stop.grace_for({hung}, "shots")
    assert stop.hurried.is_set() and time.monotonic() - began < 5
    hung.cancel()


async def test_describe_names_the_task_and_photoslots_own_frame_it_waits_in():
    stop = Stop("serve", grace=30)
    stop.started = time.monotonic()
    hung = asyncio.ensure_future(asyncio.Event().wait())
    task = asyncio.create_task(stop.grace_for({hung}, "shots"), name="photoslot-stop")
    await asyncio.sleep(0.05)
    text = describe(task)
    assert text.startswith("photoslot-stop: Stop.grace_for (stopping.py:"), text
    task.cancel()
    hung.cancel()
