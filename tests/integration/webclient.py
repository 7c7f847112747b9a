"""A browser-like client of the web admin for integration tests: cookies, the CSRF token of the
page it read last, forms sent as a page sends them (urlencoded, or multipart with files)."""
from __future__ import annotations

import re

import aiohttp

from photoslot import users
from tests import logscan

CSRF = re.compile(r'name="csrf" value="(\w+)"')


def password_of(cfg, name: str) -> str:
    password = users.reset(cfg, name)
    logscan.secret(password)
    return password


class Browser:
    def __init__(self, studio, *, lang: str = "en") -> None:
        self.s = studio
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                          headers={"Accept-Language": lang})
        self.csrf = ""
        self.last = ""
        self.password = ""

    async def __aenter__(self) -> "Browser":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.http.close()

    def _remember(self, text: str) -> None:
        self.last = text
        found = CSRF.search(text)
        if found:
            self.csrf = found.group(1)

    async def sign_in(self, user: str = "serg", password: str | None = None, next_page: str = "") -> int:
        password = password or password_of(self.s.cfg, user)
        self.password = password
        async with self.http.post(self.s.base_url + "/admin/login",
                                  data={"username": user, "password": password, "next": next_page}) as r:
            self._remember(await r.text())
            return r.status

    async def get(self, path: str, **kw) -> tuple[int, str]:
        async with self.http.get(self.s.base_url + path, **kw) as r:
            text = await r.text()
            if r.content_type == "text/html":
                self._remember(text)
            return r.status, text

    async def post(self, path: str, fields: dict, *, files: dict | None = None, follow: bool = False,
                   csrf: str | None = None) -> tuple[int, str, str]:
        """(status, body, Location) of a form sent as a page sends it; the CSRF field goes first."""
        if files:
            data = aiohttp.FormData()
            data.add_field("csrf", self.csrf if csrf is None else csrf)
            for k, v in fields.items():
                for item in (v if isinstance(v, list) else [v]):
                    data.add_field(k, item)
            for k, (name, content) in files.items():
                data.add_field(k, content, filename=name, content_type="application/octet-stream")
        else:
            data = {"csrf": self.csrf if csrf is None else csrf, **fields}
        async with self.http.post(self.s.base_url + path, data=data, allow_redirects=follow) as r:
            text = await r.text()
            if r.content_type == "text/html":
                self._remember(text)
            return r.status, text, r.headers.get("Location", "")
