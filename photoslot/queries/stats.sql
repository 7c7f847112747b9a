-- Stats over the hourly rollups (migrations/0003_ingest_rollups.sql, photoslot/rollups.py): every
-- ingest request, refused ones included, so pruning job rows loses nothing. The window is always
-- passed in (from/to from the request or the injected clock), never SQL's now(), and is counted in
-- whole hours: a row belongs to the window when its hour starts in [the hour of `from`, `to`).
-- "Ingest time" is a job's arrival → end (its answer leaves at its end). Periods are computed on
-- the wall time of %(tz)s (UTC for the API; the studio's zone on the web pages, photoslot/studio_time.py),
-- never the database session's zone. An hour belongs to the period its start falls in.

-- name: stats
-- The aggregate, written once, grouped two ways in one pass: one row for the whole window
-- (period_start NULL, first) and one per period in [from, to), empty periods included (zeros),
-- oldest first. `reset_at` (a slot's last reset_stats) keeps only what was counted after it.
WITH bounds AS (
    SELECT (%(from)s::timestamptz AT TIME ZONE %(tz)s) AS lo,
           (%(to)s::timestamptz AT TIME ZONE %(tz)s) AS hi,
           ('1 ' || %(unit)s)::interval AS step
), periods AS (
    SELECT p AS ps, p + b.step AS pe
    FROM bounds b, generate_series(date_trunc(%(unit)s, b.lo), b.hi - interval '1 microsecond', b.step) AS p
), r AS (
    -- A test shot (is_test) is no guest's shot: it counts in no run figure, only in test_shots; its
    -- provider calls and tokens are real spend and stay in the spend columns.
    SELECT hour, slot_id, provider_id, outcome, reason, status, provider_requests, provider_tokens,
           CASE WHEN is_test THEN 0 ELSE requests END AS requests,
           CASE WHEN is_test THEN requests ELSE 0 END AS test_requests,
           date_trunc(%(unit)s, hour AT TIME ZONE %(tz)s) AS ps
    FROM ingest_rollups
    WHERE (%(slot_id)s::text IS NULL OR slot_id = %(slot_id)s)
      AND (%(provider_id)s::text IS NULL OR provider_id = %(provider_id)s)
      AND (%(reset_at)s::timestamptz IS NULL OR reset_at >= %(reset_at)s)
      AND hour >= date_trunc('hour', %(from)s::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
      AND hour < %(to)s
), counts AS (
    SELECT ps, grouping(ps) = 1 AS whole_window,
           coalesce(sum(requests), 0) AS requests,
           coalesce(sum(requests) FILTER (WHERE outcome <> 'refused'), 0) AS ingest_count,
           coalesce(sum(requests) FILTER (WHERE outcome = 'refused'), 0) AS refused,
           coalesce(sum(requests) FILTER (WHERE status = 200), 0) AS answered_200,
           coalesce(sum(requests) FILTER (WHERE status = 504), 0) AS answered_504,
           coalesce(sum(requests) FILTER (WHERE reason = 'provider_unavailable'), 0) AS provider_unavailable,
           coalesce(sum(requests) FILTER (WHERE outcome = 'succeeded'), 0) AS success,
           coalesce(sum(requests) FILTER (WHERE outcome <> 'refused' AND reason = 'timeout'), 0) AS timeouts,
           coalesce(sum(requests) FILTER (WHERE outcome <> 'refused' AND reason IN (
               'provider_error', 'provider_refused', 'quota_exhausted', 'invalid_result')), 0) AS provider_errors,
           coalesce(sum(requests) FILTER (WHERE outcome = 'cancelled'), 0) AS cancelled,
           coalesce(sum(requests) FILTER (WHERE outcome <> 'refused' AND reason = 'internal_error'), 0) AS internal_errors,
           coalesce(sum(requests) FILTER (WHERE outcome NOT IN ('succeeded', 'refused')), 0) AS errors,
           coalesce(sum(requests) FILTER (WHERE outcome <> 'refused'), 0) AS finalized,
           coalesce(sum(provider_tokens) FILTER (WHERE provider_id = 'gemini'), 0) AS gemini_tokens,
           coalesce(sum(provider_requests) FILTER (WHERE provider_id = 'gemini'), 0) AS gemini_requests,
           coalesce(sum(provider_requests) FILTER (WHERE provider_id = 'turbotext'), 0) AS turbotext_attempts,
           coalesce(sum(test_requests), 0) AS test_shots,
           coalesce(sum(test_requests) FILTER (WHERE outcome = 'succeeded'), 0) AS test_shots_succeeded
    FROM r
    GROUP BY GROUPING SETS ((ps), ())
), times AS (
    -- every job's time once per count: percentiles exactly as over the job rows themselves
    SELECT date_trunc(%(unit)s, t.hour AT TIME ZONE %(tz)s) AS ps,
           grouping(date_trunc(%(unit)s, t.hour AT TIME ZONE %(tz)s)) = 1 AS whole_window,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY t.ms) AS p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY t.ms) AS p95_ms,
           avg(t.ms) AS avg_ms
    FROM ingest_times t, generate_series(1, t.n)
    WHERE NOT t.is_test
      AND (%(slot_id)s::text IS NULL OR t.slot_id = %(slot_id)s)
      AND (%(provider_id)s::text IS NULL OR t.provider_id = %(provider_id)s)
      AND (%(reset_at)s::timestamptz IS NULL OR t.reset_at >= %(reset_at)s)
      AND t.hour >= date_trunc('hour', %(from)s::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
      AND t.hour < %(to)s
    GROUP BY GROUPING SETS ((date_trunc(%(unit)s, t.hour AT TIME ZONE %(tz)s)), ())
), agg AS (
    SELECT c.*, t.p50_ms, t.p95_ms, t.avg_ms
    FROM counts c LEFT JOIN times t ON t.whole_window = c.whole_window AND t.ps IS NOT DISTINCT FROM c.ps
)
SELECT NULL::timestamptz AS period_start, NULL::timestamptz AS period_end, agg.*
FROM (SELECT 1) one LEFT JOIN agg ON agg.whole_window
UNION ALL
SELECT (periods.ps AT TIME ZONE %(tz)s), (periods.pe AT TIME ZONE %(tz)s), agg.*
FROM periods LEFT JOIN agg ON agg.ps = periods.ps AND NOT agg.whole_window
ORDER BY period_start NULLS FIRST;

-- name: rollups_add_refused
-- One flush of the refusals counted in memory (photoslot/rollups.py), whatever their number.
INSERT INTO ingest_rollups AS r (hour, slot_id, provider_id, outcome, reason, status, reset_at, is_test, requests)
SELECT t.hour, t.slot_id, t.provider_id, 'refused', t.reason, t.status,
       coalesce((SELECT last_reset_at FROM slots WHERE id = t.slot_id), '-infinity'), coalesce(t.is_test, false), t.n
FROM jsonb_to_recordset(%(rows)s::jsonb) AS t(hour timestamptz, slot_id text, provider_id text, reason text,
                                              status integer, is_test boolean, n bigint)
ON CONFLICT (hour, slot_id, provider_id, outcome, reason, status, reset_at, is_test) DO UPDATE
SET requests = r.requests + EXCLUDED.requests;

-- name: rollups_prune
WITH times AS (DELETE FROM ingest_times WHERE hour < %(cutoff)s)
DELETE FROM ingest_rollups WHERE hour < %(cutoff)s;

-- name: stats_rollup_rows
-- How many rollup rows and requests are stored (doctor, tests).
SELECT count(*) AS n, coalesce(sum(requests), 0) AS requests FROM ingest_rollups;

-- name: refusals_remember
-- One flush of the recent refusals' record (photoslot/refusals.py): one row per slot × reason ×
-- status × test shot. A key quiet for an hour starts a new episode (its count and first time).
INSERT INTO recent_refusals AS r (slot_id, reason, status, is_test, first_at, last_at, requests, clients, detail)
SELECT t.slot_id, t.reason, t.status, coalesce(t.is_test, false), t.first_at, t.last_at, t.n,
       ARRAY(SELECT jsonb_array_elements_text(coalesce(t.clients, '[]'::jsonb))), t.detail
FROM jsonb_to_recordset(%(rows)s::jsonb) AS t(slot_id text, reason text, status integer, is_test boolean,
                                              first_at timestamptz, last_at timestamptz, n bigint, clients jsonb,
                                              detail text)
ON CONFLICT (slot_id, reason, status, is_test) DO UPDATE
SET requests = CASE WHEN r.last_at < EXCLUDED.first_at - interval '1 hour' THEN EXCLUDED.requests
                    ELSE r.requests + EXCLUDED.requests END,
    first_at = CASE WHEN r.last_at < EXCLUDED.first_at - interval '1 hour' THEN EXCLUDED.first_at
                    ELSE least(r.first_at, EXCLUDED.first_at) END,
    last_at = greatest(r.last_at, EXCLUDED.last_at),
    clients = CASE WHEN cardinality(EXCLUDED.clients) > 0 THEN EXCLUDED.clients ELSE r.clients END,
    detail = coalesce(EXCLUDED.detail, r.detail);

-- name: refusals_prune
DELETE FROM recent_refusals WHERE last_at < %(cutoff)s;
