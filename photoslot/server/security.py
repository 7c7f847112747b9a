"""HTTP hardening shared by every route: who the client is, the security headers, who may read /metrics.

- `client_address(request)` — the one answer to "which address is this request from", for login
  throttling, the /metrics allow-list and anything else that keys on the client. X-Forwarded-For
  counts only from a peer in `server.trusted_proxies` (client_address.py has the rules).
- `install(app)` — every response, the errors and aiohttp's own 404/405 included, carries
  `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and a
  Content-Security-Policy that allows nothing (`default-src 'none'; frame-ancestors 'none'`): the
  API answers JSON and images, which need no scripts, styles or frames. A handler that sets its own
  CSP (a web page) keeps it. The `Server` header names no version.
- `metrics_allowed(request)` — /metrics for a listed source address or the bearer `metrics.token`.
"""
from __future__ import annotations

import hmac

from aiohttp import hdrs, web

from photoslot import client_address as addresses
from photoslot.server.keys import CTX

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


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers[hdrs.SERVER] = SERVER_NAME


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
