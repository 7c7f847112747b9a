"""The keys of the aiohttp application's state, in a module of their own.

Every handler reaches the process's `AppContext` as `request.app[CTX]` (through
`toolkit.endpoint`); `app.py` stores it. The one handler object, the ingest's, is built from the
same context and kept under INGEST with its per-app state. Keeping the keys here, below every
handler module, lets `app.py` import the handlers without the handlers importing `app.py` back.
"""
from __future__ import annotations

from aiohttp import web

from photoslot.context import AppContext

CTX = web.AppKey("ctx", AppContext)
# The IngestHandler (server/ingest.py): its in-flight set and loop-lag probe, read by app.py's
# start-up/clean-up and by `serve`'s graceful stop. Typed loosely: ingest.py builds on this module.
INGEST = web.AppKey("ingest", object)
# (path template, method) → the query parameters the OpenAPI document names for that operation
# (server/openapi.py, query_parameters): toolkit.endpoint refuses any other with 422.
QUERY_PARAMS = web.AppKey("query_params", dict)
# The connection guard's app-side face (server/connection_guard.py `Connections`): the known
# clients, and the guard itself once `serve` runs the app through it.
CONNECTIONS = web.AppKey("connections", object)
