"""The one-file binary (`make dist` → dist/photoslot) on a "machine without Python": run from a
temporary folder with a clean environment (no virtualenv on PATH, no PYTHONPATH), it emulates the
providers, serves a booth, passes its own doctor, backs up while serving and restores into a new
folder that serves too.

Without a built binary `make test` skips this one test and says why; `.ci/run` builds the binary
and sets PHOTOSLOT_BINARY, which makes a missing or broken binary a failure instead.
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from PIL import Image

from photoslot import version
from tests.acceptance.procs import Proc
from tests.conftest import FIXTURES, free_port

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BINARY = ROOT / "dist" / ("photoslot.exe" if sys.platform == "win32" else "photoslot")
BINARY = Path(os.environ.get("PHOTOSLOT_BINARY") or DEFAULT_BINARY).resolve()
PASSWORD = "booth-binary-1"

pytestmark = pytest.mark.slow


@pytest.fixture
def binary():
    required = bool(os.environ.get("PHOTOSLOT_BINARY"))
    if not BINARY.is_file():
        if required:
            pytest.fail(f"PHOTOSLOT_BINARY={BINARY} does not exist: `make dist` did not produce it")
        pytest.skip("no one-file binary at dist/photoslot: `make dist` builds it (`.ci/run` always does)")
    if not required:  # a developer's leftover build from another commit would test old code
        shown = subprocess.run([str(BINARY), "--version"], capture_output=True, text=True, timeout=60).stdout
        built = re.search(r"commit ([0-9a-f]+)", shown)
        here = version.git_commit()
        if built and here and built.group(1) != here.removesuffix("-dirty"):
            pytest.skip(f"dist/photoslot was built from commit {built.group(1)}, the checkout is at {here}: "
                        "`make dist` rebuilds it")
    return BINARY


def clean_env(home: Path) -> dict:
    """What a studio PC has: the system's PATH without any Python virtualenv, no PYTHON* variables,
    no photoslot variables."""
    venv = Path(sys.prefix).resolve()
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and not Path(p).resolve().is_relative_to(venv) and not Path(p).resolve().is_relative_to(ROOT)]
    env = {"PATH": os.pathsep.join(path), "HOME": str(home), "LANG": "C.UTF-8"}
    for name in ("SYSTEMROOT", "WINDIR", "TEMP", "TMP", "TMPDIR", "USERPROFILE"):  # what Windows needs to run at all
        if name in os.environ:
            env[name] = os.environ[name]
    return env


class Box:
    """The binary, run from one folder with the clean environment."""

    def __init__(self, exe: Path, folder: Path) -> None:
        self.exe = exe
        self.folder = folder
        self.env = clean_env(folder)
        self.procs: list[Proc] = []

    def run(self, *args: str, config: str = "photoslot.yaml", timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.exe), "--config", config, *args], cwd=self.folder, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    async def arun(self, *args: str, config: str = "photoslot.yaml") -> subprocess.CompletedProcess:
        # in a thread: this test's loop must stay free while the binary talks to the servers below
        return await asyncio.to_thread(self.run, *args, config=config)

    async def start(self, *args: str, ready: str, name: str, timeout: float = 120) -> Proc:
        proc = await asyncio.create_subprocess_exec(
            str(self.exe), *args, cwd=self.folder, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        p = Proc(proc, name)
        self.procs.append(p)
        await p.wait_for_line(ready, timeout=timeout)
        return p

    async def stop_all(self) -> None:
        for p in reversed(self.procs):
            await p.stop()


def studio_yaml(data_dir: str, port: int, emulator_port: int) -> str:
    emulator = f"http://127.0.0.1:{emulator_port}"
    return yaml.safe_dump({
        "data_dir": data_dir,
        "server": {"host": "127.0.0.1", "port": port},
        "providers": {"gemini": {"api_key": "emulator-key", "base_url": emulator},
                      "turbotext": {"api_key": "emulator-key", "base_url": emulator}},
        # the doctor must pass on whatever disk CI has; the threshold itself is tested elsewhere
        "alerts": {"media_disk_used_percent": 100},
    })


async def booth_post(port: int) -> tuple[int, bytes, str]:
    form = aiohttp.FormData()
    form.add_field("password", PASSWORD)
    form.add_field("fileToUpload", (FIXTURES / "dslr_landscape.jpg").read_bytes(), filename="IMG_0001.JPG",
                   content_type="image/jpeg")
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/ingest/slot-001", data=form,
                          timeout=aiohttp.ClientTimeout(total=90)) as r:
            return r.status, await r.read(), r.headers.get("Content-Type", "")


def assert_processed_jpeg(status: int, body: bytes, content_type: str) -> None:
    assert status == 200, body[:300]
    assert content_type.startswith("image/jpeg") and body[:3] == b"\xff\xd8\xff"
    original = (FIXTURES / "dslr_landscape.jpg").read_bytes()
    assert body != original  # the emulator's edit, not an echo
    with Image.open(io.BytesIO(body)) as img:
        assert img.format == "JPEG" and img.width > 0


async def test_the_binary_runs_a_studio_end_to_end_without_python(binary, pg_safe_tmp):
    tmp_path = pg_safe_tmp  # the studios' embedded PostgreSQL lives under it
    box = Box(binary, tmp_path)
    version = box.run("--version", timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("photoslot ") and "PostgreSQL 16" in version.stdout
    assert "commit unknown" not in version.stdout

    emulator_port, port, restored_port = free_port(), free_port(), free_port()
    (tmp_path / "photoslot.yaml").write_text(studio_yaml("studio", port, emulator_port))
    try:
        await box.start("emulate", "--port", str(emulator_port), ready="photoslot emulator listening", name="emulate")
        for args in (["slot", "set", "slot-001", "--provider", "gemini", "--operation", "image_edit",
                      "--prompt", "turn the photo into a warm sepia print"],
                     ["settings", "set", "--ingest-password", PASSWORD]):
            r = await box.arun(*args)
            assert r.returncode == 0, r.stderr
        serve = await box.start("--config", "photoslot.yaml", "serve", ready="photoslot serving on", name="serve")
        assert_processed_jpeg(*await booth_post(port))
        # the web admin's templates, static files and Russian catalogue travel inside the binary
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/admin/login", headers={"Accept-Language": "ru"}) as r:
                assert r.status == 200 and "Войти" in await r.text()
            for asset in ("admin.css", "admin.js", "favicon.svg"):
                async with http.get(f"http://127.0.0.1:{port}/admin/static/{asset}") as r:
                    assert r.status == 200, asset

        r = await box.arun("doctor", "--json")
        report = json.loads(r.stdout)
        assert r.returncode == 0 and report["ok"], [c for c in report["checks"] if c["status"] != "ok"]
        assert all(c["status"] == "ok" for c in report["checks"])

        r = await box.arun("backup", "studio-backup.tar")  # while serve runs
        assert r.returncode == 0, r.stderr
        await serve.stop()

        (tmp_path / "spare.yaml").write_text(studio_yaml("spare-studio", restored_port, emulator_port))
        r = await box.arun("restore", "studio-backup.tar", config="spare.yaml")
        assert r.returncode == 0, r.stderr
        await box.start("--config", "spare.yaml", "serve", ready="photoslot serving on", name="serve-restored")
        assert_processed_jpeg(*await booth_post(restored_port))
    finally:
        await box.stop_all()
    for p in box.procs:
        assert "Traceback" not in p.output, p.output[-3000:]
    # PostgreSQL runs from a copy in the data dir, never from the binary's temporary folder
    assert list((tmp_path / "studio" / "runtime").glob("postgresql-*/pgserver/pginstall/bin"))
