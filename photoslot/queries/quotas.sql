-- Provider request accounting for requests_per_minute / requests_per_day (fixed windows: the
-- minute, and the day in the provider's quota_time_zone, passed as the UTC instant it starts).
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().

-- name: quota_counts
SELECT window_kind, requests FROM provider_request_counts
WHERE provider_id = %(provider_id)s
  AND ((window_kind = 'minute' AND window_start = %(minute)s) OR (window_kind = 'day' AND window_start = %(day)s));

-- name: quota_counts_all
-- The current minute and every provider's current day start (quotas.usage keeps each provider's own).
SELECT provider_id, window_kind, window_start, requests FROM provider_request_counts
WHERE (window_kind = 'minute' AND window_start = %(minute)s)
   OR (window_kind = 'day' AND window_start IN (SELECT jsonb_array_elements_text(%(days)s::jsonb)::timestamptz));

-- name: quota_take
-- Counts one request in a window unless the window is already at its limit (null = no limit).
-- No row back means the quota is spent; concurrent takers serialise on the row.
INSERT INTO provider_request_counts (provider_id, window_kind, window_start, requests)
VALUES (%(provider_id)s, %(kind)s, %(start)s, 1)
ON CONFLICT (provider_id, window_kind, window_start) DO UPDATE
SET requests = provider_request_counts.requests + 1
WHERE %(limit)s::integer IS NULL OR provider_request_counts.requests < %(limit)s::integer
RETURNING requests;

-- name: quota_take_request
-- Both windows and the job's request count in one round trip (migrations/0004_request_accounting.sql).
SELECT photoslot_take_request(%(provider_id)s, %(job_id)s, %(now)s, %(minute)s, %(minute_limit)s::integer,
                              %(day)s, %(day_limit)s::integer) AS spent;

-- name: quota_prune
DELETE FROM provider_request_counts WHERE window_start < %(cutoff)s;
