"""Revocable sessions: a token is valid only in its admin's current session epoch, which sign-out,
`users revoke` and `users reset` move on — for every process sharing the database, at once."""
from __future__ import annotations

import pytest

from photoslot import auth, users
from photoslot.context import AppContext
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")


async def _sign_in(s, name):
    password = users.reset(s.cfg, name)
    return (await auth.login(s.ctx, name, password, client="192.168.1.20"))["access_token"]


async def test_revoke_ends_every_token_of_that_admin_in_every_process_and_only_theirs(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        serg_1, serg_2, igor = await _sign_in(s, "serg"), await _sign_in(s, "serg"), await _sign_in(s, "igor")
        other = await AppContext.open(s.cfg, dsn=pg_dsn)  # a second process on the same database
        try:
            for ctx in (s.ctx, other):
                assert (await auth.authenticate(ctx, serg_1))["sub"] == "serg"
            await users.end_sessions(s.ctx, "serg", actor="os:tester", source="cli")
            for ctx in (s.ctx, other):
                for token in (serg_1, serg_2):
                    with pytest.raises(auth.Unauthorized, match="session has ended"):
                        await auth.authenticate(ctx, token)
                assert (await auth.authenticate(ctx, igor))["sub"] == "igor"
            fresh = await _sign_in(s, "serg")
            assert (await auth.authenticate(other, fresh))["ep"] == 1
        finally:
            await other.close()


async def test_a_password_reset_and_a_sign_out_end_the_sessions_too(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        token = await _sign_in(s, "igor")
        await users.reset_password(s.ctx, "igor", actor="os:tester", source="cli")
        with pytest.raises(auth.Unauthorized):
            await auth.authenticate(s.ctx, token)
        token = await _sign_in(s, "igor")
        claims = await auth.authenticate(s.ctx, token)
        await auth.logout(s.ctx, claims, source="http")
        with pytest.raises(auth.Unauthorized):
            await auth.authenticate(s.ctx, token)
        actions = [r["action"] for r in await s.ctx.db.fetchall("audit_page", limit=8, action=None)]
        assert [a for a in actions if a != "users.login"][:2] == ["users.logout", "users.reset"]


async def test_revoking_an_unknown_admin_is_refused(make_cfg, pg_dsn):
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        with pytest.raises(Exception, match="serg and igor"):
            await users.end_sessions(s.ctx, "root", actor="t", source="cli")
