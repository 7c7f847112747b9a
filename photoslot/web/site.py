"""Everything the web admin adds to the aiohttp app (server/app.py calls `install`)."""
from __future__ import annotations

from aiohttp import web

from photoslot.web import (pages_auth, pages_jobs, pages_providers, pages_settings, pages_slots, pages_stats,
                           pages_templates, render)

ROUTE_TABLES = (pages_auth.routes, pages_slots.routes, pages_templates.routes, pages_providers.routes,
                pages_settings.routes, pages_jobs.routes, pages_stats.routes)


def install(app: web.Application) -> None:
    """Templates, static files, the page routes and `/` → `/admin/`."""
    render.setup(app)
    app[pages_slots.SHOTS] = pages_slots.RecentShots()  # test shots' outcomes, shown after their redirect
    app.router.add_static("/admin/static/", render.STATIC_DIR, name="admin-static", append_version=False)
    for table in ROUTE_TABLES:
        app.router.add_routes(table)
