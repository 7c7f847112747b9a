"""photoslot memory benchmark: what one very large photo costs a real `photoslot serve`.

Starts an embedded PostgreSQL and `photoslot emulate`, then for each kind of big photo a fresh
`photoslot serve` (4 in-process workers) as real processes; warms `serve` up with three ordinary
camera photos, sends one big photo (peak RSS growth over the warm baseline) and then --count more
one after another (RSS after each; "growth over run" is the RSS after the last minus the RSS after
the first). RSS is read from /proc/<pid>/status (VmRSS), sampled every 10 ms. Linux only.

    python bench/memory.py                               # 80 MP JPEG (orientation 6 and 1), 80 MP PNG
    python bench/memory.py --photos jpeg-o6 --count 20
    python bench/memory.py --code ../other-checkout      # the same load against another version
    python bench/memory.py --stages                      # each pixel stage alone, in its own process

Photos (made here from tests/fixtures/dslr_landscape.jpg, 8900 × 8900 = 79.2 MP):
- jpeg-o6: JPEG with EXIF orientation 6 (a sideways camera portrait), quality 40
- jpeg-o1: the same, orientation 1
- png:     PNG of large flat blocks, a few hundred KB (decompresses to 237 MB)
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import PASSWORD, Rig, free_port, machine  # noqa: E402

SIDE = 8900
FIXTURE = ROOT / "tests" / "fixtures" / "dslr_landscape.jpg"


def make_photos(kinds: list[str]) -> dict[str, bytes]:
    from PIL import Image

    out = {}
    with Image.open(FIXTURE) as src:
        src = src.convert("RGB")
        if {"jpeg-o6", "jpeg-o1"} & set(kinds):
            big = src.resize((SIDE, SIDE), Image.Resampling.BILINEAR)
            for kind, orientation in (("jpeg-o6", 6), ("jpeg-o1", 1)):
                if kind in kinds:
                    exif = Image.Exif()
                    exif[0x010F], exif[0x0110], exif[0x0112] = "Canon", "EOS R5", orientation
                    buf = io.BytesIO()
                    big.save(buf, "JPEG", quality=40, exif=exif.tobytes())
                    out[kind] = buf.getvalue()
            del big
        if "png" in kinds:
            flat = src.resize((89, 89)).resize((SIDE, SIDE), Image.Resampling.NEAREST)
            buf = io.BytesIO()
            flat.save(buf, "PNG")
            out["png"] = buf.getvalue()
    return out


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


class Peak:
    """The highest VmRSS seen while a block runs (sampled every 10 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb(self.pid))
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> "Peak":
        self.peak = rss_mb(self.pid)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        self.peak = max(self.peak, rss_mb(self.pid))


async def shoot(session: aiohttp.ClientSession, url: str, data: bytes) -> tuple[int, float]:
    form = aiohttp.FormData()
    form.add_field("password", PASSWORD)
    form.add_field("fileToUpload", data, filename="IMG_0001.JPG", content_type="image/jpeg")
    started = time.perf_counter()
    async with session.post(url, data=form) as r:
        await r.read()
        return r.status, time.perf_counter() - started


async def settle(pid: int, seconds: float = 1.5) -> float:
    """RSS once the process has been idle a moment (the answer is sent before the last frees)."""
    await asyncio.sleep(seconds)
    return rss_mb(pid)


async def measure(pid: int, url: str, kind: str, data: bytes, count: int) -> dict:
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(3):  # imports, pools, first-use allocations
            await shoot(session, url, FIXTURE.read_bytes())
        base = await settle(pid)
        async with Peak(pid) as peak:
            status, took = await shoot(session, url, data)
        after_first = await settle(pid)
        statuses = {status: 1}
        worst = peak.peak
        series = []
        for _ in range(count):
            async with Peak(pid) as p:
                s, _t = await shoot(session, url, data)
            worst = max(worst, p.peak)
            statuses[s] = statuses.get(s, 0) + 1
            series.append(round(rss_mb(pid), 1))
        final = await settle(pid) if count else after_first
    row = {"photo": kind, "bytes": len(data), "rss_before_mb": round(base, 1), "status_first": status,
           "answer_s_first": round(took, 2), "peak_growth_first_mb": round(peak.peak - base, 1),
           "rss_after_first_mb": round(after_first, 1), "count": count, "peak_growth_any_mb": round(worst - base, 1),
           "rss_after_all_mb": round(final, 1), "growth_over_run_mb": round(final - after_first, 1),
           "statuses": statuses, "rss_series_mb": series}
    print(f"{kind}: {len(data) / 1e6:.1f} MB; warm serve {base:.0f} MB; first answer {status} in {took:.1f} s, peak "
          f"+{row['peak_growth_first_mb']} MB, then {after_first:.0f} MB; after {count} more {final:.0f} MB "
          f"({row['growth_over_run_mb']:+} MB), worst peak +{row['peak_growth_any_mb']} MB, statuses {statuses}",
          flush=True)
    return row


STAGE = """
import re, sys, time
from pathlib import Path
from photoslot import media

def hwm():
    return int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024

path, stage = Path(sys.argv[1]), sys.argv[2]
data = path.read_bytes()
mime = media.sniff_mime(data[:16])
base = hwm()
started = time.perf_counter()
if stage == "check":
    media.check_image(path, mime)
elif stage == "provider":
    media.prepare_for_provider(path, mime, *([24] if hasattr(media, "off_loop") else []))
elif hasattr(media, "make_thumbnail"):
    media.make_thumbnail(path, path.with_suffix(".thumb.jpg"))
else:  # an older checkout: the thumbnail was made from the whole result's bytes in the handler
    from photoslot.server.public_results import make_thumbnail
    make_thumbnail(data)
print(round(hwm() - base, 1), round(time.perf_counter() - started, 2))
"""


def stages(photos: dict[str, bytes], workdir: Path, code: Path) -> list[dict]:
    """Each pixel stage alone, in a fresh process: its peak RSS growth (VmHWM) and time."""
    rows = []
    for kind, data in photos.items():
        path = workdir / f"{kind}.img"
        path.write_bytes(data)
        for stage in ("check", "provider", "thumbnail"):
            r = subprocess.run([sys.executable, "-c", STAGE, str(path), stage], capture_output=True, text=True,
                               cwd=code, env={**os.environ, "PYTHONPATH": str(code)})
            if r.returncode != 0:
                raise RuntimeError(r.stderr)
            growth, seconds = r.stdout.split()
            rows.append({"photo": kind, "stage": stage, "peak_growth_mb": float(growth), "seconds": float(seconds)})
            print(f"  {kind} {stage}: +{growth} MB, {seconds} s", flush=True)
    return rows


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", default="jpeg-o6,jpeg-o1,png")
    ap.add_argument("--count", type=int, default=100, help="photos of each kind sent after the first")
    ap.add_argument("--code", type=Path, default=ROOT, help="the photoslot checkout `serve` runs from")
    ap.add_argument("--dsn", default=None, help="use this PostgreSQL (its photoslot tables are dropped!)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--stages", action="store_true",
                    help="only measure each pixel stage (ingest check, provider copy, thumbnail) in its own process")
    args = ap.parse_args()
    args.latency = 0.0
    kinds = args.photos.split(",")
    code = args.code.resolve()
    report = args.json.resolve() if args.json else None
    workdir = Path(tempfile.mkdtemp(prefix="photoslot-membench-"))
    rig = Rig(workdir, args)
    # Every photoslot process runs from --code: its directory first on sys.path (`python -m` puts
    # the working directory there, ahead of an editable install of this checkout).
    os.chdir(code)
    rig.env = lambda: {**os.environ, "PYTHONPATH": str(code)}
    out: dict = {"machine": machine(), "command": " ".join(["python", *sys.argv]), "rows": []}
    photos = make_photos(kinds)
    if args.stages:
        out["stages"] = stages(photos, workdir, code)
        print("| photo | stage | peak RSS growth | time |")
        print("|---|---|---:|---:|")
        for r in out["stages"]:
            print(f"| {r['photo']} | {r['stage']} | +{r['peak_growth_mb']} MB | {r['seconds']} s |")
        if report:
            report.write_text(json.dumps(out, indent=2))
        shutil.rmtree(workdir, ignore_errors=True)
        return
    try:
        rig.start_database()
        rig.start_emulator()
        for kind in kinds:
            # A fresh `serve` per kind: what one kind leaves behind does not hide what the next costs.
            port = free_port()
            config = rig.write_config(f"serve-{kind}", port=port, workers=4, sync=60)
            rig.prepare(config, 60)
            serve = rig.start_serve(config, port, f"serve-{kind}")
            out["rows"].append(await measure(serve.pid, f"http://127.0.0.1:{port}/ingest/slot-001", kind,
                                             photos[kind], args.count))
            rig.stop(serve)
    finally:
        rig.close()
    print()
    print(f"machine: {out['machine']}")
    print("| photo | file | first answer | RSS before | peak RSS growth | RSS after 1 | RSS after all | growth over run |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in out["rows"]:
        print(f"| {r['photo']} | {r['bytes'] / 1e6:.1f} MB | {r['status_first']} in {r['answer_s_first']} s | "
              f"{r['rss_before_mb']} MB | "
              f"+{r['peak_growth_first_mb']} MB (worst of {r['count'] + 1}: +{r['peak_growth_any_mb']}) | "
              f"{r['rss_after_first_mb']} MB | {r['rss_after_all_mb']} MB | {r['growth_over_run_mb']:+} MB |")
    if report:
        report.write_text(json.dumps(out, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
