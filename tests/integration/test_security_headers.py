"""The security headers are on every response the app makes — aiohttp's own 404/405 and a crash's
500 included — and a handler that sets its own Content-Security-Policy (a web page) keeps it."""
from __future__ import annotations

import pytest
from aiohttp import web

from photoslot.server import security

async def _page(request):
    return web.Response(text="<html></html>", content_type="text/html",
                        headers={"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'"})


async def _crash(request):
    raise RuntimeError("a bug")


async def _json(request):
    return web.json_response({"ok": True})


@pytest.fixture
async def client(aiohttp_client):
    app = web.Application()
    security.install(app)
    app.router.add_get("/page", _page)
    app.router.add_get("/crash", _crash)
    app.router.add_get("/json", _json)
    app.router.add_get("/api/things", _json)
    app.router.add_get("/api/crash", _crash)
    return await aiohttp_client(app)


@pytest.mark.parametrize("method, path, status", [("GET", "/json", 200), ("GET", "/nowhere", 404),
                                                  ("POST", "/json", 405), ("GET", "/crash", 500)])
async def test_every_answer_carries_the_headers(client, method, path, status):
    r = await client.request(method, path)
    assert r.status == status
    for name, value in security.SECURITY_HEADERS.items():
        assert r.headers[name] == value
    assert r.headers["Server"] == "photoslot"


async def test_a_page_keeps_its_own_policy(client):
    r = await client.get("/page")
    assert r.headers["Content-Security-Policy"] == "default-src 'self'; frame-ancestors 'none'"
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("method, path, status", [("GET", "/api/things", 200), ("GET", "/api/nowhere", 404),
                                                  ("POST", "/api/things", 405), ("GET", "/api/crash", 500)])
async def test_every_api_answer_is_never_cached(client, method, path, status):
    r = await client.request(method, path)
    assert r.status == status and r.headers["Cache-Control"] == "no-store"


async def test_other_answers_keep_their_own_caching(client):
    r = await client.get("/json")
    assert "Cache-Control" not in r.headers
