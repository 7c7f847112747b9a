import sys

if len(sys.argv) > 1 and sys.argv[1] == "--watch-embedded-postgres":
    # Internal: the embedded PostgreSQL's watcher (photoslot/embedded_pg.py), started by serve and
    # work; kept ahead of the CLI so it loads nothing it does not need.
    from photoslot.embedded_pg import watch

    sys.exit(watch(sys.argv[2:]))

from photoslot.cli.app import main  # noqa: E402

if __name__ == "__main__":
    main()
