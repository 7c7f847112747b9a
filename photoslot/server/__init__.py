"""The aiohttp server: ingest, health, (later) admin API, public links and metrics."""
