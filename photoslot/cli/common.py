"""What every CLI command shares: config, the database context, errors, output."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import uuid
from typing import Any, Awaitable, Callable, Iterable

import typer
from rich.console import Console
from rich.table import Table

from photoslot import filemodes, logs
from photoslot.config import ConfigError, load_config
from photoslot.context import AppContext, use_selector_loop_on_windows
from photoslot.db import DatabaseUnavailable
from photoslot.errors import PhotoslotError

# Piped output (scripts, logs, tests) gets a wide table, so ids and URLs are never cut or wrapped.
console = Console(width=None if sys.stdout.isatty() else 220)
err_console = Console(stderr=True)


class State:
    config_path: str | None = None


state = State()


def config():
    try:
        return load_config(state.config_path)
    except ConfigError as exc:
        fail(f"config: {exc}", 2)


def fail(message: str, code: int = 1):
    # soft_wrap: one line however long (a path, a DSN), as scripts and the CLI's promise expect
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def run_async(coro):
    from photoslot.schema import SchemaError

    use_selector_loop_on_windows()
    try:
        return asyncio.run(coro)
    except SchemaError as exc:  # e.g. serve/work on a database a newer photoslot migrated: one line
        fail(exc.message, exc.exit_code)


def with_context(fn: Callable[[AppContext], Awaitable[Any]]) -> Any:
    """Open the database (embedded or DSN), run `fn`, close; domain errors become one stderr line."""
    cfg = config()
    logs.setup(cfg.get("logging.level") if cfg.get("logging.level") != "INFO" else "WARNING")

    async def main():
        filemodes.private_umask()  # a template or photo written by a command is the owner's only
        ctx = await AppContext.open(cfg)
        try:
            return await fn(ctx)
        finally:
            await ctx.close()

    try:
        return run_async(main())
    except PhotoslotError as exc:
        if exc.details and exc.exit_code == 2 and len(exc.details) > 1:
            for field, msg in exc.details.items():
                err_console.print(f"error: {field}: {msg}", markup=False, highlight=False)
            raise typer.Exit(exc.exit_code)
        fail(exc.message, exc.exit_code)
    except DatabaseUnavailable as exc:
        fail(f"database unavailable: {exc}", 1)


def _default(value):
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, default=_default, indent=2, ensure_ascii=False) + "\n")


def fmt_time(value: dt.datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def new_table(title: str, columns: Iterable[str]) -> Table:
    """A table for people, with these column headings (scripts use --json)."""
    out = Table(title=title)
    for col in columns:
        out.add_column(col)
    return out
