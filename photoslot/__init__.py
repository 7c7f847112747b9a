"""photoslot: DSLR Remote Pro ingest → AI provider → processed photo, on PostgreSQL."""

__version__ = "0.1.0"

SLOT_IDS = tuple(f"slot-{n:03d}" for n in range(1, 16))
