"""A stop that always stops: SIGINT/SIGTERM → a shutdown bounded by `grace + STOP_SLACK` seconds.

The first signal starts the stop; a second one ends the grace at once (an operator pressing Ctrl-C
again, a service manager in a hurry). The process runs its stop as steps (`step()`), each with a
small budget that also never reaches past the bound: a step that overruns is cancelled, named in a
`shutdown_overdue` line (what it was waiting for), and the stop goes on without it — the exit code
is then 1. Should the process still be there at the bound anyway (a task that ignores its
cancellation, a thread the interpreter joins at exit, a hung atexit handler), a watchdog thread
writes the same line, naming the step and every task still pending, and ends the process with
exit code 1. Nothing here imports more than the standard library and the log helper: the emulator
uses it too.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time

from photoslot.logs import event

log = logging.getLogger("photoslot.runtime")

STOP_SLACK = 10.0     # every process exits within shutdown_grace_seconds + this (docs/OPERATIONS.md)
WATCHDOG_EARLY = 0.5  # the watchdog ends the process this much before the bound
EXIT_RESERVE = 1.5    # seconds of the bound kept for what follows the last step: the interpreter's exit


def describe(task: asyncio.Future) -> str:
    """`name: where it waits` — in the task's await chain, the deepest frame of photoslot's own code
    outside the database layer, the deepest of ours, and the library frame it sleeps in, e.g.
    `photoslot-worker-0: release (jobs.py:130) → _Runner._run (db.py:98) → __aenter__ (contextlib.py:210)`."""
    try:
        name = task.get_name() if hasattr(task, "get_name") else type(task).__name__
        inner = task.get_coro() if hasattr(task, "get_coro") else None
        ours: list[str] = []
        last = None
        for _ in range(64):  # follow the await chain down to where it sleeps
            if inner is None:
                break
            frame = getattr(inner, "cr_frame", None) or getattr(inner, "gi_frame", None)
            if frame is not None:
                last = f"{getattr(inner, '__qualname__', '?')} ({os.path.basename(frame.f_code.co_filename)}:" \
                       f"{frame.f_lineno})"
                if f"{os.sep}photoslot{os.sep}" in frame.f_code.co_filename:
                    ours.append(last)
            inner = getattr(inner, "cr_await", None) or getattr(inner, "gi_yieldfrom", None)
        # the deepest of our frames that is not the database layer (who asked), the deepest of ours
        # (what it asked), the library frame it sleeps in
        caller = [f for f in ours if not f.split(" (")[-1].startswith("db.py")][-1:]
        where = " → ".join(dict.fromkeys([*caller, *ours[-1:], *([last] if last else [])])) or "?"
        return f"{name}: {where}"
    except Exception as exc:  # a description must never break the stop
        return f"{task!r} ({exc.__class__.__name__})"


class Stop:
    def __init__(self, process: str, grace: float) -> None:
        self.process = process
        self.grace = max(0.0, float(grace))
        self.bound = self.grace + STOP_SLACK
        self.requested = asyncio.Event()
        self.hurried = asyncio.Event()
        self.overdue: list[str] = []
        self.doing = "waiting for a signal"
        self.started: float | None = None  # time.monotonic() of the first signal
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ signals

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        names = ["SIGINT", "SIGTERM"] + (["SIGBREAK"] if sys.platform == "win32" else [])
        for name in names:
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            try:
                loop.add_signal_handler(sig, self.signalled, name)
            except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
                signal.signal(sig, lambda signum, _frame, n=name: loop.call_soon_threadsafe(self.signalled, n))

    def signalled(self, name: str = "signal") -> None:
        if not self.requested.is_set():
            self.started = time.monotonic()
            self.requested.set()
            threading.Thread(target=self._watchdog, name="photoslot-stop-watchdog", daemon=True).start()
        elif not self.hurried.is_set():
            self.hurried.set()
            event(log, "shutdown_hurried", process=self.process, signal=name,
                  hint="the grace ends now; the stop goes on")

    # ------------------------------------------------------------ the stop's steps

    def left(self) -> float:
        """Seconds to the bound, less what the process needs to exit after its last step."""
        if self.started is None:
            return self.bound
        return self.bound - EXIT_RESERVE - (time.monotonic() - self.started)

    async def grace_for(self, running: set, what: str) -> None:
        """Wait up to the grace (ended early by a second signal) until the live set `running` is
        empty (it is read again after each change: work may still arrive during the grace)."""
        end = time.monotonic() + min(self.grace, max(0.0, self.left()))
        hurry = asyncio.ensure_future(self.hurried.wait())
        try:
            while not hurry.done():
                pending = {t for t in running if not t.done()}
                remaining = end - time.monotonic()
                if not pending or remaining <= 0:
                    break
                self.doing = f"the grace: {len(pending)} {what} still running"
                await asyncio.wait(pending | {hurry}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hurry.cancel()

    async def step(self, what: str, awaitable, budget: float, waiting=None) -> bool:
        """Run one step of the stop for at most `budget` seconds (never past the bound). False when
        it had to be cut off: it is then named in a `shutdown_overdue` line, with what it waited
        for — the step's own task, or the tasks `waiting()` returns."""
        self.doing = what
        task = asyncio.ensure_future(awaitable)
        timeout = max(0.05, min(budget, self.left()))
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if task in done:
            if not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                event(log, "shutdown_step_failed", logging.WARNING, process=self.process, step=what,
                      error=f"{exc.__class__.__name__}: {exc}")
            return True
        tasks = list(waiting()) if waiting is not None else [task]
        waiting_for = "; ".join(describe(t) for t in tasks[:8]) or describe(task)
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
        self.overdue.append(what)
        event(log, "shutdown_overdue", logging.ERROR, process=self.process, step=what, waited_s=round(timeout, 2),
              waiting_for=waiting_for)
        return False

    async def leftover_tasks(self, budget: float = 1.5) -> None:
        """Cancel whatever task still runs (asyncio.run would wait for each without a bound)."""
        me = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not rest:
            return
        for t in rest:
            t.cancel()
        _, pending = await asyncio.wait(rest, timeout=max(0.05, min(budget, self.left())))
        if pending:
            self.overdue.append("tasks that ignore their cancellation")
            event(log, "shutdown_overdue", logging.ERROR, process=self.process, step="leftover tasks",
                  waiting_for="; ".join(describe(t) for t in list(pending)[:8]))

    @property
    def exit_code(self) -> int:
        return 1 if self.overdue else 0

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 2) if self.started is not None else 0.0

    # ------------------------------------------------------------ the watchdog

    def _watchdog(self) -> None:
        time.sleep(max(0.0, self.bound - WATCHDOG_EARLY - (time.monotonic() - (self.started or time.monotonic()))))
        pending = []
        loop = self._loop
        if loop is not None:
            try:
                pending = [describe(t) for t in asyncio.all_tasks(loop) if not t.done()][:8]
            except Exception:  # read from another thread while the loop may be changing them
                pending = ["(tasks could not be listed)"]
        threads = [t.name for t in threading.enumerate()
                   if t is not threading.current_thread() and t is not threading.main_thread() and t.is_alive()
                   and not t.daemon]
        waiting = "; ".join(pending) or "no task"
        if threads:
            waiting += f"; threads: {', '.join(threads[:8])}"
        event(log, "shutdown_overdue", logging.ERROR, process=self.process, step=self.doing,
              waited_s=round(self.bound - WATCHDOG_EARLY, 2), waiting_for=waiting,
              hint="exiting now without finishing the stop")
        for handler in logging.getLogger().handlers:
            try:
                handler.flush()
            except Exception:
                pass
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        os._exit(1)
