"""Turbotext ``/api_ai/{method}`` wire protocol: create_queue → get_result polling → download.

The final answers copy the samples of Turbotext's photo-API method pages
(turbotext.ru/photo_ai/docs/info; docs/EMULATOR.md quotes each):

* generate_image2image: no `uploaded_image` at all — the result is `data.image[0]`, a path relative
  to the Turbotext host ("image/generate_image2image_id12_0.png"), served here under `/image/…`;
* mix_images: `uploaded_image` at the top level beside `data` ("…/download.php?f=….png");
* deepfake_photo: `uploaded_image` at the top level, `data.image` absolute links,
  `data.forbidden_content`, `data.face_restore: "False"`; the result is the `url` photo (the person
  whose face is replaced) with the face from `url_image_target`;
* every final answer carries `limits: {"foto_limit", "text_limit"}` (the tariff's photos left).

Turbotext documents no error texts; the Russian ones here are assumed (docs/EMULATOR.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from . import transform
from .control import EmulatorState
from .keys import STATE_KEY

log = logging.getLogger("photoslot.emulator")

#: method → (required fields, image URL fields in fetch order, field whose image is transformed)
METHODS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "generate_image2image": (("url", "content"), ("url",), "url"),
    "mix_images": (("url_image_target", "url"), ("url_image_target", "url"), "url_image_target"),
    # documented: `url` — the person whose face is replaced; `url_image_target` — the face to put in
    "deepfake_photo": (("url", "url_image_target"), ("url", "url_image_target"), "url"),
}
IMAGE_FIELDS = frozenset({"url", "url_image_target"})
#: "url with image (format: jpg, png, jpeg)" (generate_image2image's page); webp as the method tables list it
IMAGE_ENDINGS = (".jpg", ".jpeg", ".png", ".webp")
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=10)
MAX_FETCH_BYTES = 64 * 1024 * 1024
HUGE_BYTES = 30 * 1024 * 1024
TEXT_LIMIT = 10000

# Turbotext's error texts: not documented anywhere public — assumed, in Russian as the service answers.
ERR_KEY = "Неверный API ключ"
ERR_METHOD = "Неизвестный метод"
ERR_ACTION = "Неизвестное действие"
ERR_MISSING = "Не передан обязательный параметр: {name}"
ERR_RANGE = "Неверное значение параметра {name}: допустимо от {low} до {high}"
ERR_NUMBER = "Неверное значение параметра {name}"
ERR_FORMAT = "Неверный формат изображения по ссылке {name}: допустимы jpg, png, jpeg"
ERR_QUEUE = "Очередь не найдена"
ERR_DOWNLOAD = "Не удалось загрузить изображение по ссылке ({why})"
ERR_NO_IMAGE = "Не удалось сгенерировать изображение, попробуйте ещё раз"
ERR_MODERATION = "Изображение не прошло модерацию: обнаружен запрещённый контент"
ERR_TARIFF = "Недостаточно фото-попыток на вашем тарифе. Пополните баланс"
ERR_BAD_IMAGE = "Не удалось обработать изображение"
ERR_SERVICE = "Сервис временно недоступен"

# generate_image2image's numeric fields as Turbotext documents them: name → (min, max, integer?)
RANGES = {"generate_image2image": {"seed": (1, 10 ** 10, True), "user_id": (1, None, True),
                                   "strength": (0, 80, True), "scale": (0.1, 20, False)}}


def _check_ranges(method: str, form) -> str | None:
    """Turbotext's answer to a value outside its documented range (what a real call would get)."""
    for name, (low, high, integer) in RANGES.get(method, {}).items():
        raw = form.get(name)
        if raw is None:
            continue
        try:
            value = int(raw) if integer else float(raw)
        except (TypeError, ValueError):
            return ERR_NUMBER.format(name=name)
        if value < low or (high is not None and value > high):
            return ERR_RANGE.format(name=name, low=low, high=high if high is not None else "∞")
    face_restore = form.get("face_restore")
    if method == "deepfake_photo" and face_restore is not None and face_restore not in ("True", "False"):
        return ERR_NUMBER.format(name="face_restore") + ": True или False"
    return None


@dataclasses.dataclass
class QueueItem:
    queueid: int
    method: str
    outcome: str
    entry: dict[str, Any]
    fields: dict[str, str]
    done: bool = False
    error: str | None = None
    poll_status: int | None = None  # poll_fail:NNN — every poll answers this HTTP status
    forbidden: bool = False
    result_name: str | None = None
    result_ext: str = "png"
    width: int | None = None
    height: int | None = None
    polls: int = 0


class TurbotextStore:
    def __init__(self) -> None:
        self.items: dict[int, QueueItem] = {}
        self.results: dict[str, tuple[bytes, str]] = {}
        self.tasks: set[asyncio.Task] = set()
        self.session: aiohttp.ClientSession | None = None
        self._next_id = 1000 + secrets.randbelow(9000)

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=FETCH_TIMEOUT)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


TT_KEY: web.AppKey[TurbotextStore] = web.AppKey("photoslot_emulator_turbotext", TurbotextStore)


def _json(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(payload, status=status)


def _fail(error: str, status: int = 200) -> web.Response:
    return _json({"success": False, "error": error}, status)


def _bearer_ok(request: web.Request, expected: str | None) -> bool:
    if expected is None:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and token.strip() == expected


async def api_ai(request: web.Request) -> web.StreamResponse:
    state: EmulatorState = request.app[STATE_KEY]
    stats = state.stats["turbotext"]
    started = time.monotonic()
    stats.requests += 1
    stats.http_enter()
    outcome = "error"
    try:
        outcome, response = await _serve(request, state)
        return response
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        stats.http_leave()
        log.info("turbotext %s %s outcome=%s ms=%.1f", request.method, request.path, outcome,
                 (time.monotonic() - started) * 1000)


def _count(state: EmulatorState, outcome: str) -> None:
    state.count_outcome("turbotext", outcome)


async def _serve(request: web.Request, state: EmulatorState) -> tuple[str, web.StreamResponse]:
    method = request.match_info["method"]
    if not _bearer_ok(request, state.api_keys["turbotext"]):
        _count(state, "invalid_key")
        state.record({"provider": "turbotext", "path": request.path, "method": method,
                      "outcome": "invalid_key"})
        return "invalid_key", _fail(ERR_KEY, 401)
    if method not in METHODS:
        return "unknown_method", _fail(ERR_METHOD)
    form = await request.post()
    do = form.get("do")
    if do == "create_queue":
        return await _create_queue(request, state, method, form)
    if do == "get_result":
        return _get_result(request, state, method, form)
    return "unknown_action", _fail(ERR_ACTION)


def _bad(state: EmulatorState, entry: dict, error: str) -> tuple[str, web.StreamResponse]:
    entry["outcome"] = "bad_request"
    _count(state, "bad_request")
    return "bad_request", _fail(error)


async def _create_queue(request: web.Request, state: EmulatorState, method: str,
                        form: Any) -> tuple[str, web.StreamResponse]:
    stats = state.stats["turbotext"]
    store = request.app[TT_KEY]
    stats.create_queue += 1
    fields = {k: str(v) for k, v in form.items() if k not in IMAGE_FIELDS and k != "do"
              and isinstance(v, str)}
    content = form.get("content") if isinstance(form.get("content"), str) else None
    entry = state.record({
        "provider": "turbotext",
        "path": request.path,
        "method": method,
        "do": "create_queue",
        "prompt": content,
        "content": content,
        "fields": fields,
        "images": [],
        "outcome": "pending",
    })
    required, url_fields, _ = METHODS[method]
    for name in required:
        value = form.get(name)
        if not isinstance(value, str) or not value.strip():
            return _bad(state, entry, ERR_MISSING.format(name=name))
    for name in url_fields:
        if not urlsplit(str(form[name])).path.lower().endswith(IMAGE_ENDINGS):
            return _bad(state, entry, ERR_FORMAT.format(name=name))
    problem = _check_ranges(method, form)
    if problem is not None:
        return _bad(state, entry, problem)

    try:
        outcome = await state.outcome_after_hangs("turbotext")
    except asyncio.CancelledError:
        entry["outcome"] = "cancelled"
        _count(state, "cancelled")
        raise
    if state.closing:
        entry["outcome"] = "shutdown"
        return "shutdown", _fail(ERR_SERVICE, 503)
    if outcome.startswith("fail:"):
        code = int(outcome.split(":", 1)[1])
        entry["outcome"] = f"http_{code}"
        _count(state, entry["outcome"])
        return entry["outcome"], _fail(ERR_SERVICE, code)
    if outcome == "tariff" or state.knobs["turbotext"].foto_limit == 0:
        entry["outcome"] = "tariff"
        _count(state, "tariff")
        return "tariff", _fail(ERR_TARIFF)

    queueid = store.new_id()
    entry["queueid"] = queueid
    if outcome == "truncated_json":
        entry["outcome"] = "truncated_json"
        _count(state, "truncated_json")
        raw = json.dumps({"success": True, "queueid": queueid}).encode()
        return "truncated_json", web.Response(body=raw[: len(raw) // 2],
                                              content_type="application/json")

    item = QueueItem(queueid=queueid, method=method, outcome=outcome, entry=entry, fields=fields)
    if outcome.startswith("poll_fail:"):
        item.poll_status = int(outcome.split(":", 1)[1])
    entry["outcome"] = "queued"
    store.items[queueid] = item
    urls = [(f, str(form[f])) for f in url_fields]
    stats.enter()  # a queue item being processed: the provider-side parallelism
    task = asyncio.create_task(_process(request.app, state, store, item, urls))
    store.tasks.add(task)
    task.add_done_callback(store.tasks.discard)
    return "queued", _json({"success": True, "queueid": queueid})


async def _fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes, str | None]:
    async with session.get(url) as resp:
        if resp.status != 200:
            return resp.status, b"", None
        buf = bytearray()
        async for chunk in resp.content.iter_chunked(256 * 1024):
            buf += chunk
            if len(buf) > MAX_FETCH_BYTES:
                break
        data = bytes(buf)
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip() or None
        return resp.status, data, ctype


async def _process(app: web.Application, state: EmulatorState, store: TurbotextStore,
                   item: QueueItem, urls: list[tuple[str, str]]) -> None:
    stats = state.stats["turbotext"]
    started = time.monotonic()
    final = "error"
    try:
        images: dict[str, bytes] = {}
        for role, url in urls:
            stats.fetches += 1
            try:
                assert store.session is not None
                status, data, ctype = await _fetch(store.session, url)
            except asyncio.CancelledError:
                raise
            except asyncio.TimeoutError:
                item.error, final = ERR_DOWNLOAD.format(why="timeout"), "download_failed"
                return
            except Exception as exc:  # noqa: BLE001 - any client error is a failed download
                item.error = ERR_DOWNLOAD.format(why=type(exc).__name__)
                final = "download_failed"
                return
            if status != 200:
                item.error, final = ERR_DOWNLOAD.format(why=f"HTTP {status}"), "download_failed"
                return
            if len(data) > MAX_FETCH_BYTES:
                item.error, final = ERR_DOWNLOAD.format(why="too large"), "download_failed"
                return
            info = await asyncio.to_thread(transform.describe, data, ctype, url)
            info["role"] = role
            item.entry["images"].append(info)
            if info["width"] is None:
                item.error, final = ERR_DOWNLOAD.format(why="not an image"), "download_failed"
                return
            images[role] = data

        knobs = state.knobs["turbotext"]
        latency = state.latency("turbotext")
        if latency:
            await asyncio.sleep(latency)

        outcome = item.outcome
        if outcome == "no_image":
            item.error, final = ERR_NO_IMAGE, "no_image"
            return
        if outcome == "safety":
            item.error, final = ERR_MODERATION, "safety"
            return
        mime = knobs.output_mime
        target = METHODS[item.method][2]
        overlay = images.get("url_image_target") if item.method == "deepfake_photo" else None
        if outcome == "not_image":
            data = b"this is not an image"
        else:
            try:
                data = await asyncio.to_thread(transform.transform, images[target], mime, "input", overlay=overlay)
            except transform.NotAnImage:
                item.error, final = ERR_BAD_IMAGE, "bad_image"
                return
            if outcome == "huge":
                data = data + b"\0" * max(0, HUGE_BYTES - len(data))
        described = next(i for i in item.entry["images"] if i["role"] == target)
        item.width, item.height = described["width"], described["height"]
        item.forbidden = outcome == "forbidden"
        name = secrets.token_hex(16)
        store.results[name] = (data, mime)
        item.result_name = name
        item.result_ext = transform.extension_for(mime)
        if knobs.foto_limit:
            knobs.foto_limit -= 1
        final = outcome if outcome in ("not_image", "huge", "forbidden") else "ok"
    except asyncio.CancelledError:
        final = "cancelled"
        raise
    finally:
        item.done = True
        item.entry["outcome"] = final
        stats.leave()
        _count(state, final)
        log.info("turbotext queue %s %s outcome=%s ms=%.1f", item.queueid, item.method, final,
                 (time.monotonic() - started) * 1000)


def final_answer(item: QueueItem, base: str, foto_limit: int | None) -> dict[str, Any]:
    """The documented success answer of each method (docs/EMULATOR.md quotes the samples)."""
    file_name = f"{item.result_name}.{item.result_ext}"
    data: dict[str, Any]
    if item.method == "generate_image2image":
        # no uploaded_image: data.image holds a path relative to the Turbotext host
        data = {"user_id": int(item.fields.get("user_id", 1)),
                "image": [f"image/generate_image2image_id{item.queueid}_{file_name}"],
                "prompt": item.fields.get("content", ""), "width": item.width, "height": item.height,
                "scale": float(item.fields.get("scale", 7.5)), "seed": int(item.fields.get("seed", 5443937701)),
                "strength": int(item.fields.get("strength", 40)),
                "original_language": item.fields.get("original_language", "ru")}
        body: dict[str, Any] = {"success": True, "error": "", "data": data}
    elif item.method == "mix_images":
        data = {"prompt": item.fields.get("content", ""), "width": item.width, "height": item.height,
                "seed": 9147962925, "strength": 50, "pattern_prompt": False}
        body = {"success": True, "error": "", "data": data, "uploaded_image": f"{base}/download.php?f={file_name}"}
    else:  # deepfake_photo
        link = f"{base}/download.php?f={file_name}"
        data = {"image": [link], "width": item.width, "height": item.height,
                "forbidden_content": item.forbidden, "face_restore": item.fields.get("face_restore", "False")}
        body = {"success": True, "error": "", "data": data, "uploaded_image": link}
    if item.forbidden and item.method != "deepfake_photo":
        data["forbidden_content"] = True
    if foto_limit is not None:
        body["limits"] = {"foto_limit": foto_limit, "text_limit": TEXT_LIMIT}
    return body


def _get_result(request: web.Request, state: EmulatorState, method: str,
                form: Any) -> tuple[str, web.StreamResponse]:
    stats = state.stats["turbotext"]
    store = request.app[TT_KEY]
    stats.get_result += 1
    raw_id = form.get("queueid")
    try:
        queueid: int | None = int(str(raw_id))
    except (TypeError, ValueError):
        queueid = None
    entry = state.record({"provider": "turbotext", "path": request.path, "method": method,
                          "do": "get_result", "queueid": queueid if queueid is not None else raw_id,
                          "outcome": "pending"})
    item = store.items.get(queueid) if queueid is not None else None
    if item is None:
        entry["outcome"] = "not_found"
        return "not_found", _fail(ERR_QUEUE)
    item.polls += 1
    if item.poll_status is not None:
        entry["outcome"] = f"http_{item.poll_status}"
        return entry["outcome"], _fail(ERR_QUEUE, item.poll_status)
    if not item.done or item.polls <= state.knobs["turbotext"].reconnect_polls:
        entry["outcome"] = "reconnect"
        return "reconnect", _json({"action": "reconnect"})
    if item.error is not None or item.result_name is None:
        entry["outcome"] = "failed"
        return "failed", _fail(item.error or ERR_NO_IMAGE)
    entry["outcome"] = "success"
    base = f"{request.scheme}://{request.host}"
    return "success", _json(final_answer(item, base, state.knobs["turbotext"].foto_limit))


def _result_token(name: str) -> str:
    name = name.rsplit("/", 1)[-1]
    if name.startswith("generate_image2image_id"):
        name = name.split("_", 3)[-1]  # generate_image2image_id<queueid>_<token>.<ext>
    return name.rsplit(".", 1)[0]


async def download_result(request: web.Request) -> web.StreamResponse:
    """The result file: `/download.php?f=<name>` (mix_images, deepfake_photo), `/image/<path>`
    (generate_image2image's relative data.image[0]) or `/api_ai/result/<name>`."""
    state: EmulatorState = request.app[STATE_KEY]
    store = request.app[TT_KEY]
    started = time.monotonic()
    name = request.query.get("f") or request.match_info.get("name", "")
    found = store.results.get(_result_token(name))
    state.stats["turbotext"].downloads += 1
    outcome = "ok" if found else "not_found"
    state.record({"provider": "turbotext", "path": request.path, "method": "result",
                  "outcome": outcome})
    log.info("turbotext GET %s outcome=%s ms=%.1f", request.path, outcome,
             (time.monotonic() - started) * 1000)
    if found is None:
        return web.Response(status=404, text="Not found")
    data, mime = found
    return web.Response(body=data, content_type=mime)
