-- The audit trail of admin writes.
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().

-- name: audit_insert
INSERT INTO audit_log (at, actor, source, action, target, details)
VALUES (%(now)s, %(actor)s, %(source)s, %(action)s, %(target)s, %(details)s);

-- name: audit_page
SELECT * FROM audit_log
WHERE (%(action)s::text IS NULL OR action = %(action)s)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: audit_filtered
-- The Audit page: newest first, one page of one actor's entries (or everyone's).
SELECT * FROM audit_log
WHERE (%(actor)s::text IS NULL OR actor = %(actor)s)
ORDER BY id DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: audit_filtered_count
SELECT count(*) AS n FROM audit_log
WHERE (%(actor)s::text IS NULL OR actor = %(actor)s);

-- name: audit_actors
SELECT DISTINCT actor FROM audit_log ORDER BY actor;
