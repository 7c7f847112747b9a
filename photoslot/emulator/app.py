"""The photoslot provider emulator: Gemini + Turbotext wire protocols, fault injection, stats.

Public API (used by the CLI and tests):

* :func:`make_app` — build the aiohttp application.
* :func:`start_emulator` — start it on loopback inside the running event loop.
* :func:`run` — blocking entry point for ``photoslot emulate``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
from typing import Any

from aiohttp import web

from . import gemini, turbotext
from photoslot.stopping import Stop

from .control import ControlError, EmulatorState
from .keys import STATE_KEY

log = logging.getLogger("photoslot.emulator")

#: Read up to 64 MiB so that a request over Gemini's 20 MiB is answered with Google's 400, not aiohttp's 413.
CLIENT_MAX_SIZE = 64 * 1024 * 1024
SHUTDOWN_TIMEOUT = 2.0


async def _control(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body: Any = await request.json() if request.can_read_body else {}
    except (ValueError, UnicodeDecodeError):
        return web.json_response({"error": "body must be valid JSON"}, status=400)
    try:
        config = state.apply_control(body)
    except ControlError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    log.info("control %s", json.dumps(body, sort_keys=True))
    return web.json_response(config)


async def _get_control(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].config_json())


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].stats_json())


async def _requests(request: web.Request) -> web.Response:
    return web.json_response({"requests": list(request.app[STATE_KEY].log)})


async def _index(request: web.Request) -> web.Response:
    return web.json_response({
        "service": "photoslot emulator",
        "gemini": ["POST /{v1,v1beta}/models/{model}:generateContent", "GET /{v1,v1beta}/models/{model}"],
        "turbotext": ["POST /api_ai/{generate_image2image,mix_images,deepfake_photo}",
                      "GET /download.php?f={name}", "GET /image/{path}"],
        "control": ["POST /emulator/control", "GET /emulator/control",
                    "GET /emulator/stats", "GET /emulator/requests"],
    })


def make_app(
    *,
    gemini_api_key: str | None = "emulator-key",
    turbotext_api_key: str | None = "emulator-key",
    latency_seconds: float = 0.0,
) -> web.Application:
    """Build the emulator app. An api key of ``None`` accepts any (or no) key."""
    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    app[STATE_KEY] = EmulatorState(
        gemini_api_key=gemini_api_key,
        turbotext_api_key=turbotext_api_key,
        latency_seconds=latency_seconds,
    )
    store = turbotext.TurbotextStore()
    app[turbotext.TT_KEY] = store

    async def on_startup(_: web.Application) -> None:
        await store.start()

    async def on_shutdown(a: web.Application) -> None:
        a[STATE_KEY].shutdown()  # release hung handlers so the server can stop promptly

    async def on_cleanup(_: web.Application) -> None:
        await store.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)

    for version in ("v1", "v1beta", "v1alpha"):
        app.router.add_post(rf"/{version}/models/{{model:[^/:]+}}:generateContent",
                            gemini.generate_content)
        app.router.add_get(rf"/{version}/models/{{model:[^/:]+}}", gemini.get_model)
    app.router.add_post("/api_ai/{method}", turbotext.api_ai)
    app.router.add_get("/api_ai/result/{name}", turbotext.download_result)
    app.router.add_get("/download.php", turbotext.download_result)  # uploaded_image (mix, deepfake)
    app.router.add_get("/image/{name:.+}", turbotext.download_result)  # data.image[0] (image2image)
    app.router.add_post("/emulator/control", _control)
    app.router.add_get("/emulator/control", _get_control)
    app.router.add_get("/emulator/stats", _stats)
    app.router.add_get("/emulator/requests", _requests)
    app.router.add_get("/", _index)
    return app


@dataclasses.dataclass
class RunningEmulator:
    base_url: str
    app: web.Application
    runner: web.AppRunner
    host: str
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def start_emulator(host: str = "127.0.0.1", port: int = 0,
                         **make_app_kwargs: Any) -> RunningEmulator:
    """Start the emulator in the current event loop; ``port=0`` picks a free port."""
    app = make_app(**make_app_kwargs)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT,
                           access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    actual_port = port
    server = getattr(site, "_server", None)
    for sock in getattr(server, "sockets", None) or ():
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            actual_port = sock.getsockname()[1]
            break
    return RunningEmulator(base_url=f"http://{_url_host(host)}:{actual_port}", app=app,
                           runner=runner, host=host, port=actual_port)


def run(
    host: str = "127.0.0.1",
    port: int = 8765,
    latency_seconds: float = 0.0,
    gemini_api_key: str | None = "emulator-key",
    turbotext_api_key: str | None = "emulator-key",
) -> None:
    """Serve until SIGINT/SIGTERM (blocking)."""

    async def main() -> int:
        # The same bounded stop as serve's (photoslot/stopping.py): SIGINT/SIGTERM → hung and sleeping
        # calls released, the server closed, the process gone within 10 s whatever its clients do.
        stop = Stop("emulate", grace=0)
        stop.install()
        emulator = await start_emulator(host, port, latency_seconds=latency_seconds,
                                        gemini_api_key=gemini_api_key,
                                        turbotext_api_key=turbotext_api_key)
        print(
            f"photoslot emulator listening on {emulator.base_url} "
            f"(gemini key: {'set' if gemini_api_key is not None else 'any'}, "
            f"turbotext key: {'set' if turbotext_api_key is not None else 'any'})",
            flush=True,
        )
        await stop.requested.wait()
        await stop.step("stopping the emulator", emulator.stop(), 2 * SHUTDOWN_TIMEOUT + 3)
        await stop.leftover_tasks()
        return stop.exit_code

    code = asyncio.run(main())
    if code:
        raise SystemExit(code)
