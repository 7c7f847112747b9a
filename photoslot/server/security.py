"""HTTP hardening shared by every route: who the client is, the security headers, who may read /metrics.

- `client_address(request)` — the one answer to "which address is this request from", for login
  throttling, the /metrics allow-list and anything else that keys on the client. X-Forwarded-For
  counts only from a peer in `server.trusted_proxies` (client_address.py has the rules).
- `install(app)` — every response, the errors and aiohttp's own 404/405 included, carries
  `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and a
  Content-Security-Policy that allows nothing (`default-src 'none'; frame-ancestors 'none'`): the
  API answers JSON and images, which need no scripts, styles or frames. A handler that sets its own
  CSP (a web page) keeps it. The `Server` header names no version.
  Every `/api/*` answer also says `Cache-Control: no-store` (tokens, settings, job details are
  nobody's cache's business).
- `served_over_https(request)` — TLS here, or a peer listed in `server.trusted_proxies` saying
  `X-Forwarded-Proto: https` (the session cookie is `Secure` then).
- `refuse_compressed_bodies` — a request whose body has a `Content-Encoding` other than identity
  is answered 415 in the endpoint's own shape before a byte of it is read: the runner never
  inflates request bodies (connection_guard.make_runner), and nothing here does either.
- `metrics_allowed(request)` — /metrics for a listed source address or the bearer `metrics.token`.
"""
from __future__ import annotations

import hmac

from aiohttp import hdrs, web

from photoslot import client_address as addresses
from photoslot import ingest_limits
from photoslot.server.ingest_answers import error_response
from photoslot.server.keys import CONNECTIONS, CTX

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
SERVER_NAME = "photoslot"
_FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def _cfg(request: web.Request):
    return request.app[CTX].cfg


def client_address(request: web.Request) -> str:
    """The address of the client behind this request (see the module doc)."""
    return addresses.resolve(request.remote, request.headers.getall("X-Forwarded-For", []),
                             addresses.trusted_networks(_cfg(request)))


def prove_client(request: web.Request) -> None:
    """This request came with a valid admin session: its address is a known client from now on
    (its connections are kept when the server is full, connection_guard.py)."""
    connections = request.app.get(CONNECTIONS)
    if connections is not None:
        connections.prove(request, ingest_limits.client_key(client_address(request)))


def served_over_https(request: web.Request) -> bool:
    """TLS on this connection, or a trusted proxy in front saying the client used https."""
    if request.secure:
        return True
    proto = request.headers.get("X-Forwarded-Proto")
    if not proto or not addresses.listed(request.remote, addresses.trusted_networks(_cfg(request))):
        return False
    return proto.split(",")[0].strip().lower() == "https"


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers[hdrs.SERVER] = SERVER_NAME
    if _is_api(request.path):
        response.headers[hdrs.CACHE_CONTROL] = "no-store"


def identity_encoding(value: str | None) -> bool:
    """Whether a Content-Encoding header (None: absent) leaves the bytes as they are."""
    if value is None:
        return True
    return all(token.strip().lower() in ("", "identity") for token in value.split(","))


COMPRESSED_DETAILS = "compressed request bodies are not accepted (Content-Encoding); send the body uncompressed"


@web.middleware
async def refuse_compressed_bodies(request: web.Request, handler):
    """415 for a body with a Content-Encoding other than identity, on every route, in its shape:
    the ingest's JSON for /ingest, the admin error shape for /api and the public links, an error
    page for /admin (raised for the page middleware outside this one). Installed innermost."""
    if identity_encoding(request.headers.get(hdrs.CONTENT_ENCODING)):
        return await handler(request)
    if request.path.startswith("/admin"):
        raise web.HTTPUnsupportedMediaType()
    if request.path.startswith("/ingest"):
        ctx = request.app.get(CTX)
        if ctx is not None:  # counted like every other ingest request (photoslot/rollups.py)
            ctx.refusals.add(at=ctx.clock.now(), slot_id=request.match_info.get("slot_id", ""), provider_id=None,
                             reason="unsupported_media_type", status=415)
        return error_response(415, "unsupported_media_type", COMPRESSED_DETAILS, close=True)
    resp = web.json_response({"error": {"code": "unsupported_media_type", "message": COMPRESSED_DETAILS,
                                        "details": {"content_encoding": "identity only"}}}, status=415)
    resp.force_close()
    return resp


def install(app: web.Application) -> None:
    # A response-prepare signal, not a middleware: it also sees the answers aiohttp makes itself
    # (unknown path, wrong method, a crash) and those raised past every middleware.
    app.on_response_prepare.append(_add_headers)


def metrics_allowed(request: web.Request) -> bool:
    """/metrics: the bearer token when `metrics.token` is set, or a source address in `metrics.allow`.
    A request relayed by a proxy we do not trust (a forwarding header from an untrusted peer) never
    passes by address: whoever the proxy relays would otherwise look like the proxy's address."""
    cfg = _cfg(request)
    token = cfg.get("metrics.token")
    if token:
        scheme, _, given = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), str(token).encode()):
            return True
    relayed = any(h in request.headers for h in _FORWARDING_HEADERS)
    if relayed and not addresses.listed(request.remote, addresses.trusted_networks(cfg)):
        return False
    return addresses.listed(client_address(request), addresses.networks(cfg, "metrics.allow"))
