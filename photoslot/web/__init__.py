"""The web admin (the "single window"): server-rendered pages at /admin/ over the same service
functions the JSON API and the CLI call.

    session.py   the cookie session, the CSRF token, the page headers
    i18n.py      Russian and English from one catalogue (locale/ru.po); texts found missing
    words.py     the words for ids a page shows: parameters, template roles, audit actions and fields
    site.py      install(app): the routes, templates and static files
    render.py    Jinja2 through aiohttp-jinja2, the page error middleware
    pages_*.py   one module per page; thin like the API's handlers: parse, call a service, render
    charts.py    the statistics' charts as SVG drawn on the server (no script, no chart library)
    templates/, static/, locale/   shipped inside the package; no CDN, no build step
"""
