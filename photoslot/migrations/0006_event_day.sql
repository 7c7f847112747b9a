-- An event day from the browser alone: what the web admin needs to find a failing booth, and
-- sessions that last a working day.

-- Refused requests, remembered for the Statistics page's "Last failures" (photoslot/refusals.py).
-- A refused request never writes a row of its own: the ingest counts refusals in memory and each
-- flush (stats.flush_seconds) upserts one row per slot × reason × status × test, so the table's
-- size is bounded by those keys (16 slot ids, unknown ids folded into `invalid`), however many
-- requests a password-guessing flood sends. A row is one episode: `requests` since `first_at`; a
-- key quiet for an hour starts a new episode when it is refused again.
CREATE TABLE IF NOT EXISTS recent_refusals (
    slot_id     text        NOT NULL,
    reason      text        NOT NULL,
    status      integer     NOT NULL,
    is_test     boolean     NOT NULL DEFAULT false,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    requests    bigint      NOT NULL,
    clients     text[]      NOT NULL DEFAULT '{}',   -- the last few client addresses seen (at most 5)
    detail      text,                                -- what the booth was told, the last time
    PRIMARY KEY (slot_id, reason, status, is_test)
);
CREATE INDEX IF NOT EXISTS recent_refusals_last_at ON recent_refusals (last_at DESC);

-- Web admin sessions ended from one browser ("Sign out"): the session id (`sid` claim, kept across
-- renewals) is refused from then on, by the pages and the API alike. Kept until the session could
-- not be valid anyway (its absolute end), then pruned by the sweeper. Ending all of an admin's
-- sessions is the session epoch (users.py), not rows here.
CREATE TABLE IF NOT EXISTS ended_sessions (
    sid          text        PRIMARY KEY,
    username     text        NOT NULL,
    ended_at     timestamptz NOT NULL,
    forget_after timestamptz NOT NULL
);
