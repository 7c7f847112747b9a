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
