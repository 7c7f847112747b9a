-- Stats over the jobs table: counts by outcome, ingest time percentiles, provider spend.
-- The window is always passed in (from/to from the request or the injected clock), never SQL's now().
-- "Ingest time" is answered_ms (request arrival → answer, recorded by the ingest handler), or
-- created_at → finalized_at while that is not recorded yet (the answer leaves at finalization).
-- Periods are computed on UTC wall time so day/week/month boundaries do not depend on the
-- session's time zone.

-- name: stats
-- The aggregate, written once, grouped two ways in one pass: one row for the whole window
-- (period_start NULL, first) and one per period in [from, to), empty periods included (zeros),
-- oldest first. Jobs count from count_from (≥ from: a slot's reset_stats moves it).
WITH bounds AS (
    SELECT (%(from)s::timestamptz AT TIME ZONE 'UTC') AS lo,
           (%(to)s::timestamptz AT TIME ZONE 'UTC') AS hi,
           ('1 ' || %(unit)s)::interval AS step
), periods AS (
    SELECT p AS ps, p + b.step AS pe
    FROM bounds b, generate_series(date_trunc(%(unit)s, b.lo), b.hi - interval '1 microsecond', b.step) AS p
), agg AS (
    SELECT date_trunc(%(unit)s, created_at AT TIME ZONE 'UTC') AS ps,
           grouping(date_trunc(%(unit)s, created_at AT TIME ZONE 'UTC')) = 1 AS whole_window,
           count(*) AS ingest_count,
           count(*) FILTER (WHERE status = 'succeeded') AS success,
           count(*) FILTER (WHERE failure_reason = 'timeout') AS timeouts,
           count(*) FILTER (WHERE failure_reason IN ('provider_error', 'provider_refused', 'quota_exhausted',
                                                     'invalid_result')) AS provider_errors,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE failure_reason = 'internal_error') AS internal_errors,
           count(*) FILTER (WHERE is_finalized AND status <> 'succeeded') AS errors,
           count(*) FILTER (WHERE is_finalized) AS finalized,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY coalesce(answered_ms, extract(epoch FROM finalized_at - created_at) * 1000))
               FILTER (WHERE is_finalized) AS p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY coalesce(answered_ms, extract(epoch FROM finalized_at - created_at) * 1000))
               FILTER (WHERE is_finalized) AS p95_ms,
           coalesce(sum(provider_tokens) FILTER (WHERE provider_id = 'gemini'), 0) AS gemini_tokens,
           coalesce(sum(provider_requests) FILTER (WHERE provider_id = 'gemini'), 0) AS gemini_requests,
           coalesce(sum(provider_requests) FILTER (WHERE provider_id = 'turbotext'), 0) AS turbotext_attempts
    FROM jobs
    WHERE (%(slot_id)s::text IS NULL OR slot_id = %(slot_id)s)
      AND created_at >= %(count_from)s AND created_at < %(to)s
    GROUP BY GROUPING SETS ((date_trunc(%(unit)s, created_at AT TIME ZONE 'UTC')), ())
)
SELECT NULL::timestamptz AS period_start, NULL::timestamptz AS period_end, agg.*
FROM agg WHERE agg.whole_window
UNION ALL
SELECT (periods.ps AT TIME ZONE 'UTC'), (periods.pe AT TIME ZONE 'UTC'), agg.*
FROM periods LEFT JOIN agg ON agg.ps = periods.ps AND NOT agg.whole_window
ORDER BY period_start NULLS FIRST;
