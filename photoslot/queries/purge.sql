-- Media cache purge requests: recorded by the admin API / CLI, carried out by the sweeper.
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().

-- name: purge_request_insert
INSERT INTO purge_requests (id, scope, requested_by, requested_at, expires_cutoff)
VALUES (%(id)s, %(scope)s, %(actor)s, %(now)s, %(expires_cutoff)s)
RETURNING *;

-- name: purge_requests_pending
SELECT * FROM purge_requests WHERE done_at IS NULL ORDER BY requested_at;

-- name: purge_request_done
UPDATE purge_requests SET done_at = %(now)s, report = %(report)s
WHERE id = %(id)s AND done_at IS NULL
RETURNING id;

-- name: purge_request_get
SELECT * FROM purge_requests WHERE id = %(id)s;
