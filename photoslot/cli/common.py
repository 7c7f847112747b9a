"""What every CLI command shares: config, the database context, errors, output."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from photoslot import filemodes, logs
from photoslot.config import ConfigError, load_config
from photoslot.context import AppContext, use_selector_loop_on_windows
from photoslot.db import DatabaseUnavailable
from photoslot.errors import PhotoslotError

# Piped output (scripts, logs, tests) gets a wide table, so ids and URLs are never cut or wrapped.
console = Console(width=None if sys.stdout.isatty() else 220)
# soft_wrap: a message is one line however long (a path, a DSN) — in a pipe or file too, where
# rich would otherwise wrap at 80 columns; scripts and the CLI's promise count on one line.
err_console = Console(stderr=True, soft_wrap=True)


class State:
    config_path: str | None = None


state = State()


def config():
    """The config every command works with; says so when its studio is not the previous command's."""
    try:
        cfg = load_config(state.config_path)
    except ConfigError as exc:
        fail(f"config: {exc}", 2)
    note_where(cfg)
    return cfg


def fail(message: str, code: int = 1):
    err_console.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


def run_async(coro):
    from photoslot.schema import SchemaError

    use_selector_loop_on_windows()
    try:
        return asyncio.run(coro)
    except SchemaError as exc:  # e.g. serve/work on a database a newer photoslot migrated: one line
        fail(exc.message, exc.exit_code)


def where(cfg) -> str:
    """The studio a command works on: the embedded database's data dir, or the DSN without its password."""
    if not cfg.dsn:
        return f"data dir {cfg.data_dir}"
    dsn = re.sub(r"(://[^:/@]*:).*@", r"\1***@", cfg.dsn)
    return "database " + re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)


def _last_used_file() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "photoslot" / "last-used"


def note_where(cfg) -> None:
    """One stderr line when this command's studio is not the one the previous command used.

    A relative data dir, a different --config or PHOTOSLOT_DSN silently meant another (often new,
    empty) studio: `jobs` showing nothing, a `slot set` nobody serves. The line says so at once.
    """
    now = where(cfg)
    record = _last_used_file()
    try:
        before = record.read_text(encoding="utf-8").strip()
    except OSError:
        before = None
    if before is not None and before != now:
        err_console.print(f"note: using {now} (the previous photoslot command used {before})",
                          markup=False, highlight=False)
    if before != now:
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            temp = record.with_name(f"last-used.{os.getpid()}")
            temp.write_text(now + "\n", encoding="utf-8")
            os.replace(temp, record)  # whole or not at all, when two commands run at once
        except OSError:
            pass  # a read-only home: the note is a help, never a reason to fail


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


class SafeTable(Table):
    """A rich table whose text cells are shown as text: never read as rich markup (`[red]`), and with
    every control character and bidi override written visibly (logs.escape_controls), so a slot
    name holding ESC/OSC sequences cannot retitle the terminal or colour what follows."""

    def add_row(self, *cells, **kwargs) -> None:
        # line breaks stay: a cell may hold lines of its own (a slot's settings), the table keeps them in it
        super().add_row(*(Text(logs.escape_controls(c, keep_lines=True)) if isinstance(c, str) else c for c in cells),
                        **kwargs)


def new_table(title: str, columns: Iterable[str], **options) -> SafeTable:
    """A table for people, with these column headings (scripts use --json)."""
    out = SafeTable(title=title, **options)
    for col in columns:
        out.add_column(col)
    return out
