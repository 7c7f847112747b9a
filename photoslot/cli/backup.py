"""`photoslot backup FILE [--with-results]` and `photoslot restore FILE [--force] | --undo | --discard-previous`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import psycopg2
import typer

from photoslot.cli.common import config, console, fail, print_json, run_async
from photoslot.db import DatabaseUnavailable


def _run(coro_fn):
    from photoslot.backup import BackupError, TargetNotEmpty
    from photoslot.pgbin import PgToolError

    try:
        return run_async(coro_fn())
    except (BackupError, TargetNotEmpty) as exc:
        fail(exc.message, exc.exit_code)
    except DatabaseUnavailable as exc:
        fail(f"database unavailable: {exc}", 1)
    except psycopg2.Error as exc:  # connecting to or renaming a database
        fail(f"database: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__}", 1)
    except PgToolError as exc:
        fail(str(exc), 1)
    except OSError as exc:
        fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), 1)


def _contents(counts: dict, templates: int, results: int | None) -> str:
    return (f"{counts['configured_slots']} configured slot(s), {templates} template(s), {counts['jobs']} job(s), "
            f"{counts['audit_entries']} audit entries" + (f", {results} result file(s)" if results is not None else ""))


def backup(file: Path = typer.Argument(..., metavar="FILE", dir_okay=False, help="the archive to write"),
           with_results: bool = typer.Option(False, "--with-results", help="include the result photos too"),
           as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """One archive of the studio: database, templates, admin accounts, config (safe while serve runs)."""
    from photoslot import backup as backups

    cfg = config()
    if not file.resolve().parent.is_dir():
        fail(f"no such folder: {file.resolve().parent}", 2)
    report = _run(lambda: backups.backup(cfg, file, with_results=with_results))
    if as_json:
        print_json(report)
        return
    console.print(f"backup written: {report['file']} ({report['size_bytes'] / 1e6:.1f} MB, schema version "
                  f"{report['schema_version']}): "
                  f"{_contents(report['counts'], report['templates'], report['results'] if with_results else None)}"
                  f" in {report['ms']} ms", highlight=False)
    for line in report["missing_files"]:
        console.print(f"warning: file gone during the backup, not in the archive: {line}", highlight=False)
    console.print("the archive holds the admin accounts and provider keys: keep it as safe as the studio PC",
                  highlight=False)


def restore(file: Optional[Path] = typer.Argument(None, metavar="FILE", exists=True, dir_okay=False, readable=True,
                                                  help="an archive written by `photoslot backup`"),
            force: bool = typer.Option(False, "--force", help="replace a data dir / database that is not empty (the "
                                                              "studio there is kept for --undo)"),
            undo: bool = typer.Option(False, "--undo", help="go back to the studio the last restore replaced (run "
                                                            "again: forward to the restored one)"),
            discard_previous: bool = typer.Option(False, "--discard-previous",
                                                  help="remove the studio kept by the last restore (or --undo)"),
            as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Restore a backup into an empty data dir (or database.dsn); --force replaces what is there.

    The whole archive is checked first and the new studio built beside the old one; only when it is
    complete are the two swapped, and the one that was there is kept until --discard-previous."""
    from photoslot import backup as backups

    chosen = [name for name, on in (("FILE", file is not None), ("--undo", undo),
                                    ("--discard-previous", discard_previous)) if on]
    if len(chosen) != 1:
        fail("give an archive FILE, or --undo, or --discard-previous (one of them)", 2)
    cfg = config()
    if undo:
        report = _run(lambda: backups.undo(cfg))
        if as_json:
            print_json(report)
            return
        kept = report["kept"]
        console.print(f"back to the studio the last restore replaced, in {report['data_dir']}; the one it replaced "
                      f"is kept now (database {kept['database']['kept'] or '—'}, folders "
                      f"{', '.join(p['kept'] for p in kept['paths'])}): `photoslot restore --undo` again goes "
                      "forward, `photoslot restore --discard-previous` removes it", highlight=False, markup=False)
        return
    if discard_previous:
        report = _run(lambda: backups.discard_previous(cfg))
        if as_json:
            print_json(report)
            return
        console.print(f"removed the kept studio: database {report['removed_database'] or '—'}, "
                      f"{', '.join(report['removed_paths']) or 'no folders'}", highlight=False, markup=False)
        return
    report = _run(lambda: backups.restore(cfg, file, force=force))
    if as_json:
        print_json(report)
        return
    console.print(f"restored {report['file']} (made {report['created_at']} by photoslot "
                  f"{report['photoslot_version']}) into {report['data_dir']} ({report['database']} database): "
                  f"{_contents(report['counts'], report['counts'].get('templates', 0), report['results_restored'])}; "
                  f"schema version {report['schema_version']}" + (f" after {', '.join(report['migrated'])}"
                                                                  if report["migrated"] else ""),
                  highlight=False, markup=False)
    if report["previous_kept"]:
        prev = report["previous_kept"]
        console.print(f"the studio that was there is kept (database {prev['database']['kept'] or '—'}, folders "
                      f"{', '.join(p['kept'] for p in prev['paths'] if p['kept']) or '—'}): `photoslot restore "
                      "--undo` goes back to it, `photoslot restore --discard-previous` removes it",
                      highlight=False, markup=False)
    if report["config_copy"]:
        console.print(f"the backed-up config file is in {report['config_copy']} (for reference; "
                      "this restore used the current config)", highlight=False, markup=False)
