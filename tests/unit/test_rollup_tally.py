"""Refused requests counted in memory (photoslot/rollups.py): a flood of them stays a handful of keys."""
from __future__ import annotations

import datetime as dt

from photoslot.rollups import INVALID_SLOT, Tally, hour_of

T0 = dt.datetime(2026, 6, 1, 12, 34, 56, tzinfo=dt.timezone.utc)


def test_a_flood_of_guesses_and_scans_stays_a_few_keys():
    tally = Tally()
    for i in range(10_000):
        tally.add(at=T0, slot_id="slot-001", provider_id="gemini", reason="invalid_password", status=401)
        tally.add(at=T0, slot_id=f"slot-{i:05d}", provider_id=None, reason="slot_not_found", status=404)
    assert tally.total() == 20_000 and len(tally) == 2
    rows = sorted(tally.drain())
    assert rows == [(hour_of(T0), INVALID_SLOT, "", "slot_not_found", 404, False, 10_000),
                    (hour_of(T0), "slot-001", "gemini", "invalid_password", 401, False, 10_000)]
    assert len(tally) == 0


def test_counts_fall_into_the_hour_of_arrival_and_survive_a_failed_flush():
    tally = Tally()
    tally.add(at=T0, slot_id="slot-002", provider_id="turbotext", reason="payload_too_large", status=413)
    tally.add(at=T0 + dt.timedelta(hours=1), slot_id="slot-002", provider_id="turbotext", reason="payload_too_large",
              status=413)
    assert {r[0] for r in tally.drain()} == {dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc),
                                             dt.datetime(2026, 6, 1, 13, tzinfo=dt.timezone.utc)}
    rows = [(hour_of(T0), "slot-002", "", "queue_full", 429, False, 3)]
    tally.put_back(rows)
    tally.put_back(rows)
    assert tally.drain() == [(hour_of(T0), "slot-002", "", "queue_full", 429, False, 6)]


def test_an_admins_test_shot_refusal_is_kept_apart_from_the_booths():
    tally = Tally()
    tally.add(at=T0, slot_id="slot-003", provider_id="gemini", reason="slot_not_found", status=404)
    tally.add(at=T0, slot_id="slot-003", provider_id="gemini", reason="slot_not_found", status=404, is_test=True)
    assert sorted(tally.drain()) == [(hour_of(T0), "slot-003", "gemini", "slot_not_found", 404, False, 1),
                                     (hour_of(T0), "slot-003", "gemini", "slot_not_found", 404, True, 1)]
