"""JWT issue/verify and the admin secrets files, without a database."""
from __future__ import annotations

import base64
import datetime as dt
import json
import stat
import sys

import jwt
import pytest

from photoslot import auth, users
from photoslot.config import Config
from photoslot.passwords import verify_password

NOW = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def cfg(tmp_path):
    c = Config()
    c.set("data_dir", str(tmp_path / "data"))
    return c


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_issued_token_verifies_with_all_claims(cfg):
    answer = auth.issue_token(cfg, "serg", now=NOW)
    assert answer["token_type"] == "bearer" and answer["expires_in_sec"] == 3600
    claims = auth.verify_token(cfg, answer["access_token"], now=NOW + dt.timedelta(minutes=59))
    assert claims["sub"] == "serg" and claims["iat"] == int(NOW.timestamp())
    assert claims["exp"] == claims["iat"] + 3600 and set(claims["permissions"]) == set(auth.PERMISSIONS)
    other = auth.verify_token(cfg, auth.issue_token(cfg, "serg", now=NOW)["access_token"], now=NOW)
    assert other["jti"] != claims["jti"]


def test_token_expires_exactly_at_exp_on_the_given_clock(cfg):
    token = auth.issue_token(cfg, "igor", now=NOW, ttl_seconds=60)["access_token"]
    auth.verify_token(cfg, token, now=NOW + dt.timedelta(seconds=59))
    with pytest.raises(auth.Unauthorized, match="expired"):
        auth.verify_token(cfg, token, now=NOW + dt.timedelta(seconds=60))


def test_alg_none_wrong_key_and_tampering_are_unauthorized(cfg):
    token = auth.issue_token(cfg, "serg", now=NOW)["access_token"]
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    attacks = [
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        jwt.encode(claims, None, algorithm="none") if "none" in jwt.algorithms.get_default_algorithms() else "x.y.",
        jwt.encode(claims, "another-secret-of-enough-length!", algorithm="HS256"),
        jwt.encode(claims, users.jwt_secret(cfg), algorithm="HS512"),  # right key, algorithm not allowed
        f"{header}.{_b64({**claims, 'permissions': ['*']})}.{sig}",
        f"{header}.{payload}.{sig[::-1]}",
        "",
        "Bearer",
    ]
    for token_ in attacks:
        with pytest.raises(auth.Unauthorized):
            auth.verify_token(cfg, token_, now=NOW)


@pytest.mark.parametrize("missing", ["sub", "permissions", "exp", "iat", "jti", "ep"])
def test_every_claim_is_required(cfg, missing):
    claims = {"sub": "serg", "permissions": list(auth.PERMISSIONS), "iat": int(NOW.timestamp()),
              "exp": int(NOW.timestamp()) + 60, "jti": "abc", "ep": 0}
    del claims[missing]
    with pytest.raises(auth.Unauthorized):
        auth.verify_token(cfg, jwt.encode(claims, users.jwt_secret(cfg), algorithm="HS256"), now=NOW)


def test_bearer_header_and_permissions(cfg):
    token = auth.issue_token(cfg, "serg", now=NOW, permissions=["slots:read"])["access_token"]
    assert auth.bearer_token(f"Bearer {token}") == token == auth.bearer_token(f"bearer  {token} ")
    claims = auth.verify_token(cfg, token, now=NOW)
    assert claims["ep"] == 0  # the session epoch the token was issued in
    auth.require(claims, "slots:read")
    with pytest.raises(auth.Forbidden):
        auth.require(claims, "settings:write")
    for header in (None, "", token, f"Basic {token}", "Bearer "):
        with pytest.raises(auth.Unauthorized):
            auth.bearer_token(header)


def test_reset_changes_one_password_and_keeps_the_file_private(cfg):
    first = users.ensure_admins(cfg)
    new = users.reset(cfg, "igor")
    records = users.load_admins(cfg)
    assert verify_password(new, records["igor"]) and not verify_password(first["igor"], records["igor"])
    assert verify_password(first["serg"], records["serg"])
    if sys.platform != "win32":
        path = users.secrets_dir(cfg) / users.ADMINS_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(Exception, match="serg and igor"):
        users.reset(cfg, "root")


def test_secret_is_stable_per_data_dir(cfg, tmp_path):
    assert users.jwt_secret(cfg) == users.jwt_secret(cfg) and len(users.jwt_secret(cfg)) == 32
    other = Config()
    other.set("data_dir", str(tmp_path / "elsewhere"))
    assert users.jwt_secret(other) != users.jwt_secret(cfg)
