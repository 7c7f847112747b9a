"""The `photoslot` command line: one typer app, one module per subject (reference: docs/CLI.md)."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from photoslot import logs
from photoslot.cli import audit as audit_cli
from photoslot.cli import backup as backup_cli
from photoslot.cli import doctor as doctor_cli
from photoslot.cli import migrate as migrate_cli
from photoslot.cli import common, jobs, media, settings, slot, template
from photoslot.cli import providers as providers_cli
from photoslot.cli import secrets as secrets_cli
from photoslot.cli import stats as stats_cli
from photoslot.cli import users as users_cli
from photoslot.cli.common import config, console, err_console, fail, new_table, print_json, run_async, with_context
from photoslot.providers import catalogue
from photoslot.sweeper import sweep_and_deliver

app = typer.Typer(help="photoslot — DSLR Remote Pro ⇄ AI image providers, on PostgreSQL.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(slot.app, name="slot")
app.add_typer(settings.app, name="settings")
app.add_typer(template.app, name="template")
app.add_typer(jobs.app, name="jobs")
app.add_typer(providers_cli.app, name="providers")
app.command("stats")(stats_cli.stats)
app.command("audit")(audit_cli.audit)
app.add_typer(users_cli.app, name="users")
app.add_typer(secrets_cli.app, name="secrets")
app.add_typer(media.app, name="media")
app.command("job")(jobs.job)
app.command("doctor")(doctor_cli.doctor)
app.command("migrate")(migrate_cli.migrate)
app.command("backup")(backup_cli.backup)
app.command("restore")(backup_cli.restore)


def _print_version(value: bool) -> None:
    if value:
        from photoslot.version import line

        typer.echo(line())
        raise typer.Exit()


@app.callback()
def main_options(config_path: Optional[str] = typer.Option(None, "--config", metavar="PATH",
                                                           help="YAML config (else PHOTOSLOT_CONFIG, ./photoslot.yaml)"),
                 _version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                               help="version, commit and PostgreSQL version")):
    common.state.config_path = config_path


@app.command()
def serve(host: Optional[str] = typer.Option(None, "--host", help="listen address (server.host)"),
          port: Optional[int] = typer.Option(None, "--port", help="listen port (server.port)"),
          workers: Optional[int] = typer.Option(None, "--workers", min=0,
                                                help="in-process workers, 0 = none (workers.in_process)")) -> None:
    """HTTP server + in-process workers + sweeper."""
    from photoslot import runtime  # here, not at the top: it loads the server, the workers and the SDKs

    cfg = config()
    logs.setup(cfg.get("logging.level"))
    if host is not None:
        cfg.set("server.host", host)
    if port is not None:
        cfg.set("server.port", port)
    n = workers if workers is not None else int(cfg.get("workers.in_process"))
    try:
        code = run_async(runtime.serve(cfg, host=cfg.get("server.host"), port=int(cfg.get("server.port")), workers=n))
    except OSError as exc:
        fail(f"cannot start the server: {exc}", 1)
    if code:  # the stop had to cut something off (its log names it)
        raise typer.Exit(code)


@app.command()
def work(concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1,
                                                   help="workers in this process (workers.in_process)")) -> None:
    """Workers only, against the configured database (scale-out)."""
    from photoslot import runtime  # here, not at the top: see serve

    cfg = config()
    logs.setup(cfg.get("logging.level"))
    code = run_async(runtime.work(cfg, concurrency=concurrency or int(cfg.get("workers.in_process"))))
    if code:  # the stop had to cut something off (its log names it)
        raise typer.Exit(code)


@app.command()
def sweep(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """One sweeper pass; reports what it removed and finalized."""
    report = with_context(sweep_and_deliver)
    if as_json:
        print_json(report)
    else:
        console.print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in report.items() if k not in ("ms", "errors"))
                      + f" ({report['ms']} ms)", markup=False, highlight=False)
        for err in report["errors"]:
            err_console.print(f"warning: sweep step failed: {err}", markup=False, highlight=False)
    if report["errors"]:
        raise typer.Exit(1)


@app.command()
def emulate(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8765, "--port"),
            latency: float = typer.Option(0.0, "--latency", metavar="SECONDS", help="provider latency to simulate"),
            gemini_key: Optional[str] = typer.Option("emulator-key", "--gemini-key", help="API key to require"),
            turbotext_key: Optional[str] = typer.Option("emulator-key", "--turbotext-key", help="API key to require")) -> None:
    """Local stand-in for Gemini and Turbotext, with run-time fault injection."""
    from photoslot.emulator import run  # here, not at the top: see serve

    logs.setup("INFO")
    run(host=host, port=port, latency_seconds=latency, gemini_api_key=gemini_key, turbotext_api_key=turbotext_key)


def _optional_values(argv: list[str]) -> list[str]:
    """`settings set --ingest-password` with no TEXT means "ask without echo" (docs/CLI.md).

    Click options cannot take an optional value through typer, so a bare flag gets the prompt
    marker here, before parsing.
    """
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--ingest-password" and (i + 1 == len(out) or out[i + 1].startswith("--")):
            out.insert(i + 1, settings.PROMPT)
            break
    return out


def main() -> None:
    """Run the CLI; a usage error is one line on stderr too (click would draw a box or three lines)."""
    from typer._click import exceptions as click_errors

    try:
        code = app(args=_optional_values(sys.argv[1:]), prog_name="photoslot", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:  # the help is already on stdout
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None and isinstance(exc, click_errors.UsageError) else ""
        sys.stderr.write("error: " + " ".join(exc.format_message().split()) + hint + "\n")
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("error: aborted\n")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
