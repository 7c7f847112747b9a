-- `photoslot doctor` (photoslot/doctor.py).

-- name: clock_database_now
-- The one place SQL's clock is read on purpose: doctor compares it with this host's clock.
SELECT clock_timestamp() AS now;
