"""Web admin page speed on loopback: each page's server time (p50/p95 over N loads) and the bytes
a browser with a cold cache transfers for it (the page and every asset it references).

One command starts what it needs (embedded PostgreSQL, `photoslot emulate`, `photoslot serve` as
real processes, like bench/run.py), fills a realistic studio over the admin API — 15 configured
slots, a style template, test shots through the real queue so cards, results, jobs and the charts
have data — signs in through the page form, and measures:

    python bench/admin_pages.py                 # 50 loads per page
    python bench/admin_pages.py --loads 200 --shots 40

"server time" is the time from sending the request to the last byte of the page, measured by the
client on the same host (loopback: no network in it). Assets (CSS, JS, icon, images) are counted
once, as a first visit with an empty cache loads them; `data:` images are inside the page already.
"""
from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import KEY, Rig, free_port, pct  # noqa: E402  (bench/run.py: the same rig as the load bench)

FIXTURES = ROOT / "tests" / "fixtures"
# what a browser loads with the page: every src= (scripts, images) and <link href=> (CSS, icon);
# <a href> (downloads, navigation) and form actions are not loaded
ASSET = re.compile(r'(?:\bsrc="|<link\b[^>]*\bhref=")(/[^"]*)"')
TARGET_MS, TARGET_KB = 50, 300


def pages(job_id: str) -> list[tuple[str, str]]:
    return [("Slots", "/admin/"), ("Slot", "/admin/slots/slot-001"), ("Jobs", "/admin/jobs"),
            ("Job", f"/admin/jobs/{job_id}"), ("Statistics (24 h, all)", "/admin/stats"),
            ("Statistics (30 d, one slot)", "/admin/stats?period=30d&slot_id=slot-001"),
            ("Templates", "/admin/templates"), ("Providers", "/admin/providers"),
            ("Settings", "/admin/settings"), ("Audit", "/admin/audit"), ("Sign-in", "/admin/login")]


async def fill_studio(base: str, password: str, shots: int) -> str:
    """15 slots (Gemini and Turbotext), a template, `shots` test shots; returns one job id."""
    async with aiohttp.ClientSession() as s:
        async with s.post(base + "/api/login", json={"username": "serg", "password": password}) as r:
            token = (await r.json())["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        for n in range(1, 16):
            provider = "gemini" if n % 3 else "turbotext"
            body = {"name": f"Booth {n}", "provider_id": provider, "operation_id": "image_edit",
                    "settings_json": {"prompt": f"studio look number {n}"}}
            async with s.put(f"{base}/api/slots/slot-{n:03d}", json=body, headers=auth) as r:
                assert r.status == 200, await r.text()
        async with s.put(f"{base}/api/slots/slot-002", headers=auth, json={
                "provider_id": "gemini", "operation_id": "style_transfer", "enabled": False,
                "settings_json": {"prompt": "in this style"}}) as r:
            assert r.status == 200, await r.text()
        form = aiohttp.FormData()
        form.add_field("slot_id", "slot-002")
        form.add_field("setting_key", "style")
        form.add_field("file", (FIXTURES / "template_style.jpg").read_bytes(), filename="style.jpg")
        async with s.post(base + "/api/template-media/register", data=form, headers=auth) as r:
            assert r.status == 201, await r.text()
        photo = (FIXTURES / "small_photo.png").read_bytes()
        job_id = None
        for i in range(shots):
            form = aiohttp.FormData()
            form.add_field("file", photo, filename="shot.png")
            slot = f"slot-{(i % 15) + 1:03d}" if i % 15 != 1 else "slot-001"
            async with s.post(f"{base}/api/slots/{slot}/test_shot", data=form, headers=auth) as r:
                await r.read()
                job_id = r.headers.get("X-Job-Id", job_id)
        return job_id


async def measure(base: str, password: str, loads: int, job_id: str) -> list[dict]:
    jar = aiohttp.CookieJar(unsafe=True)  # loopback is an IP address
    async with aiohttp.ClientSession(cookie_jar=jar) as s:
        async with s.post(base + "/admin/login", data={"username": "serg", "password": password}) as r:
            assert r.status == 200 and "/admin/login" not in str(r.url), "sign-in failed"
        out = []
        for name, path in pages(job_id):
            if path == "/admin/login":
                session = aiohttp.ClientSession()  # signed out: the sign-in page itself
            else:
                session = s
            times, html = [], b""
            for _ in range(loads):
                t0 = time.perf_counter()
                async with session.get(base + path) as r:
                    html = await r.read()
                    assert r.status == 200, (path, r.status)
                times.append((time.perf_counter() - t0) * 1000)
            assets = sorted(set(ASSET.findall(html.decode("utf-8"))) - {path})
            asset_bytes = 0
            for asset in assets:
                async with session.get(base + asset) as r:
                    asset_bytes += len(await r.read())
            if session is not s:
                await session.close()
            out.append({"page": name, "path": path, "p50_ms": pct(times, 50), "p95_ms": pct(times, 95),
                        "html_bytes": len(html), "total_bytes": len(html) + asset_bytes})
        return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loads", type=int, default=50, help="loads per page")
    ap.add_argument("--shots", type=int, default=30, help="test shots made before measuring")
    ap.add_argument("--dsn", default=None, help="a PostgreSQL DSN (default: an embedded one)")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="photoslot-bench-admin-"))
    rig = Rig(workdir, SimpleNamespace(dsn=args.dsn, latency=0.0))
    try:
        rig.start_database()
        rig.start_emulator()
        port = free_port()
        config = rig.write_config("admin", port=port, workers=4, sync=30)
        text = config.read_text().replace("  gemini:", f"  turbotext: {{api_key: {KEY}, base_url: '{rig.emulator_url}'}}\n  gemini:", 1)
        config.write_text(text)
        rig.start_serve(config, port, "serve")
        secrets = (workdir / "data" / "secrets" / "first-start-passwords.txt").read_text()
        password = re.search(r"^admin serg password .*: (\S+)$", secrets, re.M).group(1)
        base = f"http://127.0.0.1:{port}"
        job_id = await fill_studio(base, password, args.shots)
        rows = await measure(base, password, args.loads, job_id)
    finally:
        rig.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'page':30} {'p50 ms':>8} {'p95 ms':>8} {'page KB':>8} {'cold KB':>8}")
    for r in rows:
        flag = "" if r["p95_ms"] <= TARGET_MS and r["total_bytes"] <= TARGET_KB * 1024 else "  over target"
        print(f"{r['page']:30} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['html_bytes'] / 1024:8.1f} "
              f"{r['total_bytes'] / 1024:8.1f}{flag}")
    print(f"target: p95 ≤ {TARGET_MS} ms and ≤ {TARGET_KB} KB per page (cold cache); {args.loads} loads per page")


if __name__ == "__main__":
    asyncio.run(main())
