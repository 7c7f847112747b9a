"""Run-time knobs, scripted outcomes, counters and the request log of the emulator.

One :class:`EmulatorState` lives on the aiohttp app (``app[STATE_KEY]``). Each provider
("gemini", "turbotext") has its own :class:`ProviderKnobs` and :class:`ProviderStats`; the
request log is shared and capped.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import random
import re
import time
from typing import Any

PROVIDERS = ("gemini", "turbotext")

#: Scripted / random outcomes understood by both providers.
SIMPLE_OUTCOMES = frozenset(
    {"ok", "no_image", "safety", "hang", "truncated_json", "not_image", "huge", "fail"}
)
#: Outcomes one provider knows (docs/EMULATOR.md says which documented answer each reproduces).
GEMINI_OUTCOMES = frozenset(
    {"zero_quota", "rate_limit", "image_safety", "prohibited", "image_other", "text_only", "location", "html_502",
     "unknown_model"}
)
TURBOTEXT_OUTCOMES = frozenset({"forbidden", "tariff"})
_FAIL_RE = re.compile(r"^fail:(\d{3})$")
_RATE_LIMIT_RE = re.compile(r"^rate_limit:(\d+(?:\.\d+)?)$")  # a 429 whose RetryInfo asks for N seconds
_POLL_FAIL_RE = re.compile(r"^poll_fail:(\d{3})$")  # Turbotext: queued, then every poll answers this status
OUTPUT_MIMES = ("image/png", "image/jpeg", "image/webp")
#: "model": about 1 MP at the photo's aspect ratio, as Gemini's image model answers; "input": the
#: photo's stored size; "echo": the photo's own bytes back, untouched (benchmarks: no Pillow work).
OUTPUT_SIZES = ("model", "input", "echo")
LOG_CAP = 1000

KNOB_FIELDS = (
    "no_quota",
    "foto_limit",
    "latency_seconds",
    "latency_max_seconds",
    "fail_rate",
    "fail_status",
    "no_image_rate",
    "safety_rate",
    "hang",
    "reconnect_polls",
    "output_mime",
    "output_size",
    "script",
)
CONTROL_FIELDS = frozenset(KNOB_FIELDS) | {"provider", "reset"}


class ControlError(ValueError):
    """An invalid /emulator/control body (answered with HTTP 400)."""


def _valid_status(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_script_item(item: Any) -> str:
    if not isinstance(item, str):
        raise ControlError(f"script items must be strings, got {item!r}")
    if item in SIMPLE_OUTCOMES or item in GEMINI_OUTCOMES or item in TURBOTEXT_OUTCOMES:
        return item
    m = _FAIL_RE.match(item) or _POLL_FAIL_RE.match(item)
    if m and _valid_status(int(m.group(1))):
        return item
    if _RATE_LIMIT_RE.match(item):
        return item
    raise ControlError(
        f"unknown script outcome {item!r}; expected one of "
        f"{sorted(SIMPLE_OUTCOMES | GEMINI_OUTCOMES | TURBOTEXT_OUTCOMES)}, 'fail:<status 400-599>', "
        "'rate_limit:<seconds>' or 'poll_fail:<status 400-599>'"
    )


#: Turbotext's `limits.foto_limit` a fresh emulator starts with (photos left on the tariff).
DEFAULT_FOTO_LIMIT = 1000


@dataclasses.dataclass
class ProviderKnobs:
    no_quota: bool = False  # Gemini: every generateContent is the zero-quota 429 (models.get still works)
    foto_limit: int | None = DEFAULT_FOTO_LIMIT  # Turbotext: photos left; null = answers carry no `limits`
    latency_seconds: float = 0.0
    # Above latency_seconds: each request's latency is drawn uniformly between the two (a real
    # provider's spread); 0 or below it: every request takes latency_seconds.
    latency_max_seconds: float = 0.0
    fail_rate: float = 0.0
    fail_status: int = 503
    no_image_rate: float = 0.0
    safety_rate: float = 0.0
    hang: bool = False
    reconnect_polls: int = 0
    output_mime: str = "image/png"
    output_size: str = "model"
    script: collections.deque = dataclasses.field(default_factory=collections.deque)

    def as_json(self) -> dict[str, Any]:
        out = {f: getattr(self, f) for f in KNOB_FIELDS}
        out["script"] = list(self.script)
        return out


@dataclasses.dataclass
class ProviderStats:
    requests: int = 0
    in_flight: int = 0
    max_concurrent: int = 0
    by_outcome: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    # Turbotext only
    create_queue: int = 0
    get_result: int = 0
    downloads: int = 0
    fetches: int = 0
    http_in_flight: int = 0
    http_max_concurrent: int = 0

    def enter(self) -> None:
        self.in_flight += 1
        self.max_concurrent = max(self.max_concurrent, self.in_flight)

    def leave(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def http_enter(self) -> None:
        self.http_in_flight += 1
        self.http_max_concurrent = max(self.http_max_concurrent, self.http_in_flight)

    def http_leave(self) -> None:
        self.http_in_flight = max(0, self.http_in_flight - 1)


def validate_control(body: Any) -> dict[str, Any]:
    """Check a control body completely before anything is applied; return it normalised."""
    if not isinstance(body, dict):
        raise ControlError("control body must be a JSON object")
    unknown = set(body) - CONTROL_FIELDS
    if unknown:
        raise ControlError(f"unknown control fields: {sorted(unknown)}")
    out: dict[str, Any] = {}
    provider = body.get("provider")
    if provider is not None and provider not in PROVIDERS:
        raise ControlError(f"provider must be one of {list(PROVIDERS)} or null")
    out["provider"] = provider
    if "reset" in body:
        if not isinstance(body["reset"], bool):
            raise ControlError("reset must be a boolean")
        out["reset"] = body["reset"]
    for field in ("latency_seconds", "latency_max_seconds"):
        if field in body:
            v = body[field]
            if not _is_number(v) or v < 0 or v > 3600:
                raise ControlError(f"{field} must be a number between 0 and 3600")
            out[field] = float(v)
    for rate in ("fail_rate", "no_image_rate", "safety_rate"):
        if rate in body:
            v = body[rate]
            if not _is_number(v) or not 0.0 <= v <= 1.0:
                raise ControlError(f"{rate} must be a number between 0 and 1")
            out[rate] = float(v)
    if "fail_status" in body:
        if not _valid_status(body["fail_status"]):
            raise ControlError("fail_status must be an integer HTTP status between 400 and 599")
        out["fail_status"] = body["fail_status"]
    if "hang" in body:
        if not isinstance(body["hang"], bool):
            raise ControlError("hang must be a boolean")
        out["hang"] = body["hang"]
    if "no_quota" in body:
        if not isinstance(body["no_quota"], bool):
            raise ControlError("no_quota must be a boolean")
        out["no_quota"] = body["no_quota"]
    if "foto_limit" in body:
        v = body["foto_limit"]
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise ControlError("foto_limit must be a non-negative integer or null")
        out["foto_limit"] = v
    if "reconnect_polls" in body:
        v = body["reconnect_polls"]
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 10_000:
            raise ControlError("reconnect_polls must be a non-negative integer")
        out["reconnect_polls"] = v
    if "output_mime" in body:
        if body["output_mime"] not in OUTPUT_MIMES:
            raise ControlError(f"output_mime must be one of {list(OUTPUT_MIMES)}")
        out["output_mime"] = body["output_mime"]
    if "output_size" in body:
        if body["output_size"] not in OUTPUT_SIZES:
            raise ControlError(f"output_size must be one of {list(OUTPUT_SIZES)}")
        out["output_size"] = body["output_size"]
    if "script" in body:
        if not isinstance(body["script"], list):
            raise ControlError("script must be a list of outcomes")
        out["script"] = [validate_script_item(i) for i in body["script"]]
    return out


class EmulatorState:
    def __init__(
        self,
        *,
        gemini_api_key: str | None,
        turbotext_api_key: str | None,
        latency_seconds: float = 0.0,
    ) -> None:
        if latency_seconds < 0:
            raise ValueError("latency_seconds must be >= 0")
        self.api_keys = {"gemini": gemini_api_key, "turbotext": turbotext_api_key}
        self.default_latency = float(latency_seconds)
        self.knobs = {p: self._default_knobs() for p in PROVIDERS}
        self.stats = {p: ProviderStats() for p in PROVIDERS}
        self.log: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_CAP)
        self._release = {p: asyncio.Event() for p in PROVIDERS}
        self.closing = False
        self.rng = random.Random()

    def _default_knobs(self) -> ProviderKnobs:
        return ProviderKnobs(latency_seconds=self.default_latency)

    # -- control -------------------------------------------------------------------------
    def apply_control(self, body: Any) -> dict[str, Any]:
        cfg = validate_control(body)
        targets = [cfg["provider"]] if cfg["provider"] else list(PROVIDERS)
        for p in targets:
            if cfg.get("reset"):
                self.knobs[p] = self._default_knobs()
                self.stats[p] = ProviderStats()
                if cfg["provider"] is None:
                    self.log.clear()
                else:
                    kept = [e for e in self.log if e.get("provider") != p]
                    self.log.clear()
                    self.log.extend(kept)
                self.release_hangs(p)
            knobs = self.knobs[p]
            for field in KNOB_FIELDS:
                if field not in cfg:
                    continue
                if field == "script":
                    knobs.script = collections.deque(cfg["script"])
                else:
                    setattr(knobs, field, cfg[field])
            if cfg.get("hang") is False:
                self.release_hangs(p)
        return self.config_json()

    def config_json(self) -> dict[str, Any]:
        return {p: self.knobs[p].as_json() for p in PROVIDERS}

    def stats_json(self) -> dict[str, Any]:
        g = self.stats["gemini"]
        t = self.stats["turbotext"]
        return {
            "gemini": {
                "requests": g.requests,
                "in_flight": g.in_flight,
                "max_concurrent": g.max_concurrent,
                "by_outcome": dict(g.by_outcome),
            },
            "turbotext": {
                "requests": t.requests,
                "in_flight": t.in_flight,
                "max_concurrent": t.max_concurrent,
                "http_in_flight": t.http_in_flight,
                "http_max_concurrent": t.http_max_concurrent,
                "create_queue": t.create_queue,
                "get_result": t.get_result,
                "downloads": t.downloads,
                "fetches": t.fetches,
                "by_outcome": dict(t.by_outcome),
            },
        }

    # -- outcomes ------------------------------------------------------------------------
    def next_outcome(self, provider: str) -> str:
        """Consume one scripted outcome, else roll the random knobs. "fail" → "fail:<status>"."""
        knobs = self.knobs[provider]
        if knobs.script:
            outcome = knobs.script.popleft()
        else:
            r = self.rng.random
            if knobs.fail_rate and r() < knobs.fail_rate:
                outcome = "fail"
            elif knobs.safety_rate and r() < knobs.safety_rate:
                outcome = "safety"
            elif knobs.no_image_rate and r() < knobs.no_image_rate:
                outcome = "no_image"
            else:
                outcome = "ok"
        if outcome == "fail":
            outcome = f"fail:{knobs.fail_status}"
        return outcome

    def latency(self, provider: str) -> float:
        """This request's latency: `latency_seconds`, or drawn up to `latency_max_seconds`."""
        knobs = self.knobs[provider]
        if knobs.latency_max_seconds > knobs.latency_seconds:
            return self.rng.uniform(knobs.latency_seconds, knobs.latency_max_seconds)
        return knobs.latency_seconds

    def release_hangs(self, provider: str) -> None:
        self._release[provider].set()
        self._release[provider] = asyncio.Event()

    async def wait_while_hanging(self, provider: str, *, scripted: bool) -> None:
        """Block while the ``hang`` knob is on (or, for a scripted hang, until the next release).

        Returns when released; cancellation (client disconnect) propagates to the caller.
        """
        while not self.closing:
            if not scripted and not self.knobs[provider].hang:
                return
            await self._release[provider].wait()
            if scripted:
                return

    async def outcome_after_hangs(self, provider: str) -> str:
        """The next outcome, once any hang is over: the ``hang`` knob holds every request first; a
        scripted ``hang`` holds this one until the next release, then it answers normally."""
        await self.wait_while_hanging(provider, scripted=False)
        outcome = self.next_outcome(provider)
        if outcome == "hang":
            await self.wait_while_hanging(provider, scripted=True)
            outcome = "ok"
        return outcome

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry.setdefault("received_at", time.time())
        self.log.append(entry)
        return entry

    def count_outcome(self, provider: str, outcome: str) -> None:
        self.stats[provider].by_outcome[outcome] += 1

    def shutdown(self) -> None:
        self.closing = True
        for p in PROVIDERS:
            self.release_hangs(p)
