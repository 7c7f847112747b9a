"""The one-file binary's footprint: file size, cold start to /healthz, memory at idle.

    python bench/appliance.py                     # dist/photoslot against the checkout's photoslot
    python bench/appliance.py --binary PATH --runs 5 --idle 10

For each way of running photoslot (the one-file binary; `python -m photoslot` from the venv, for
comparison) it starts `photoslot serve` in a fresh temporary folder and polls GET /healthz every
20 ms, timing from the spawn to the first 200:

- first start: an empty data dir — the binary copies PostgreSQL out of itself, initdb runs, the
  schema is migrated, the admin accounts are made;
- restart:     the same data dir again (PostgreSQL stopped in between, as after a reboot).

After each restart it waits --idle seconds and reads RSS: photoslot's own processes (for the
binary: the bootloader and the Python process it starts) and, separately, the embedded
PostgreSQL's processes. Also timed: `photoslot --version` (start-up cost of the process alone),
and the CPU seconds photoslot's processes spent until /healthz answered (steadier than wall time
on a busy machine).
Prints a table and writes bench/results/appliance-<date>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(procs) -> float:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 1e6


def postgres_of(data_dir: Path) -> list[psutil.Process]:
    pgdata = str(data_dir / "pg")
    out = []
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] == "postgres":
            cmd = " ".join(p.info["cmdline"] or [])
            if pgdata in cmd:  # the postmaster; its children are the backends and helpers
                out.append(p)
                out.extend(p.children(recursive=True))
    return out


def start_once(cmd: list[str], folder: Path, port: int, idle: float) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOSLOT_")}
    started = time.monotonic()
    proc = subprocess.Popen([*cmd, "--config", str(folder / "photoslot.yaml"), "serve", "--workers", "4"],
                            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/healthz"
    healthy = None
    while time.monotonic() - started < 180:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    healthy = time.monotonic() - started
                    break
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}")
        time.sleep(0.02)
    if healthy is None:
        proc.kill()
        raise RuntimeError("no /healthz within 180 s")
    me = psutil.Process(proc.pid)
    cpu = 0.0  # CPU seconds photoslot's own processes spent getting there: less noisy than wall time
    for p in [me, *me.children(recursive=True)]:
        try:
            if p.name() != "postgres":
                t = p.cpu_times()
                cpu += t.user + t.system
        except psutil.Error:
            pass
    time.sleep(idle)
    ours = [me, *me.children(recursive=True)]
    ours = [p for p in ours if p.name() != "postgres"]
    pg = postgres_of(folder / "data")
    result = {"healthz_s": round(healthy, 3), "cpu_to_healthz_s": round(cpu, 2), "rss_photoslot_mb": round(rss_mb(ours), 1),
              "photoslot_processes": len(ours), "rss_postgres_mb": round(rss_mb(pg), 1),
              "postgres_processes": len(pg)}
    proc.terminate()
    proc.wait(30)
    deadline = time.monotonic() + 30  # the last user stops the embedded PostgreSQL: wait for it
    while postgres_of(folder / "data") and time.monotonic() < deadline:
        time.sleep(0.1)
    return result


def measure(name: str, cmd: list[str], runs: int, idle: float) -> dict:
    versions = []
    for _ in range(runs):
        t = time.monotonic()
        subprocess.run([*cmd, "--version"], check=True, capture_output=True)
        versions.append(time.monotonic() - t)
    with tempfile.TemporaryDirectory(prefix=f"photoslot-bench-{name}-") as tmp:
        folder = Path(tmp)
        port = free_port()
        (folder / "photoslot.yaml").write_text(
            f"data_dir: {folder / 'data'}\nserver: {{host: 127.0.0.1, port: {port}}}\n", encoding="utf-8")
        first = start_once(cmd, folder, port, idle)
        restarts = [start_once(cmd, folder, port, idle) for _ in range(runs)]
    med = lambda key: round(statistics.median(r[key] for r in restarts), 3)  # noqa: E731
    return {"name": name, "command": cmd, "version_s_median": round(statistics.median(versions), 3),
            "first_start_healthz_s": first["healthz_s"], "restart_healthz_s_median": med("healthz_s"),
            "restart_healthz_s_all": [r["healthz_s"] for r in restarts],
            "first_start_cpu_s": first["cpu_to_healthz_s"], "restart_cpu_s_median": med("cpu_to_healthz_s"),
            "idle_rss_photoslot_mb_median": med("rss_photoslot_mb"),
            "photoslot_processes": restarts[0]["photoslot_processes"],
            "idle_rss_postgres_mb_median": med("rss_postgres_mb"),
            "postgres_processes": restarts[0]["postgres_processes"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / "dist" / ("photoslot.exe" if os.name == "nt" else "photoslot")))
    ap.add_argument("--runs", type=int, default=3, help="restarts (and --version runs) per variant")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle before RSS is read")
    ap.add_argument("--no-venv", action="store_true", help="measure the binary only")
    args = ap.parse_args()
    binary = Path(args.binary)
    variants = [("binary", [str(binary)])]
    if not args.no_venv:
        variants.append(("venv", [sys.executable, "-m", "photoslot"]))
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
              "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
                         f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
              "binary_size_bytes": binary.stat().st_size, "idle_seconds": args.idle, "runs": args.runs,
              "variants": [measure(name, cmd, args.runs, args.idle) for name, cmd in variants]}
    print(f"binary {binary}: {report['binary_size_bytes'] / 2**20:.1f} MiB ({report['binary_size_bytes']:,} bytes); "
          f"load average at start {report['load_average_at_start']}")
    print(f"{'variant':8} {'--version':>10} {'1st start':>10} {'restart':>9} {'CPU 1st/restart':>16} "
          f"{'RSS photoslot':>14} {'RSS postgres':>13}")
    for v in report["variants"]:
        print(f"{v['name']:8} {v['version_s_median']:>9.2f}s {v['first_start_healthz_s']:>9.2f}s "
              f"{v['restart_healthz_s_median']:>8.2f}s {v['first_start_cpu_s']:>7.2f}/{v['restart_cpu_s_median']:.2f} s "
              f"{v['idle_rss_photoslot_mb_median']:>10.1f} MB "
              f"({v['photoslot_processes']}) {v['idle_rss_postgres_mb_median']:>7.1f} MB ({v['postgres_processes']})")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"appliance-{dt.date.today().isoformat()}.json"
    path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"written: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
