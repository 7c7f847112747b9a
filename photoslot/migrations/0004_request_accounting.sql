-- One round trip per provider request (the worker's on_request hook, photoslot/quotas.py
-- take_request): count it in the provider's minute and day windows unless one of them is spent,
-- and on the job (provider_requests). Returns NULL once counted, or the spent window ('minute' or
-- 'day') with nothing counted anywhere. Concurrent takers serialise on the window rows' locks, so
-- the minute given back when the day is spent is never seen by another taker.
CREATE OR REPLACE FUNCTION photoslot_take_request(p_provider text, p_job uuid, p_now timestamptz,
                                                  p_minute timestamptz, p_minute_limit integer,
                                                  p_day timestamptz, p_day_limit integer)
RETURNS text AS $$
BEGIN
    INSERT INTO provider_request_counts AS c (provider_id, window_kind, window_start, requests)
    VALUES (p_provider, 'minute', p_minute, 1)
    ON CONFLICT (provider_id, window_kind, window_start) DO UPDATE SET requests = c.requests + 1
    WHERE p_minute_limit IS NULL OR c.requests < p_minute_limit;
    IF NOT FOUND THEN
        RETURN 'minute';
    END IF;
    INSERT INTO provider_request_counts AS c (provider_id, window_kind, window_start, requests)
    VALUES (p_provider, 'day', p_day, 1)
    ON CONFLICT (provider_id, window_kind, window_start) DO UPDATE SET requests = c.requests + 1
    WHERE p_day_limit IS NULL OR c.requests < p_day_limit;
    IF NOT FOUND THEN
        UPDATE provider_request_counts SET requests = requests - 1
        WHERE provider_id = p_provider AND window_kind = 'minute' AND window_start = p_minute;
        RETURN 'day';
    END IF;
    UPDATE jobs SET provider_requests = provider_requests + 1, updated_at = p_now WHERE id = p_job;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
