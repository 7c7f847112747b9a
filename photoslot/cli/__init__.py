"""The `photoslot` command: one typer app (app.py), one module per subject (reference: docs/CLI.md)."""
