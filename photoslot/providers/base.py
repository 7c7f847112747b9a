"""What every provider client is, takes, returns or raises.

Providers know nothing of jobs, slots or settings: the worker (photoslot/worker/attempt.py)
reads what a job needs, hands a client its key and its input, and finalizes the job from the
result or the ProviderFailure.
"""
from __future__ import annotations

import abc
import collections
import re
from dataclasses import dataclass, field
from typing import Awaitable, Callable


@dataclass
class ProviderInput:
    image: bytes          # the photo, already upright
    mime: str
    prompt: str
    params: dict
    templates: dict = field(default_factory=dict)  # role -> (bytes, mime); URL providers get links instead
    urls: dict = field(default_factory=dict)  # URL providers: "photo" and each role -> public link


@dataclass
class ProviderResult:
    image: bytes
    mime: str | None
    response_id: str | None = None
    tokens: int | None = None
    attempts: int = 1
    # What the provider said is left on the account after this call (Turbotext's `limits.foto_limit`),
    # when it says so; the worker records it (photoslot_provider_quota_remaining, the quota_low alert).
    quota_remaining: int | None = None


class ProviderFailure(Exception):
    """A provider outcome that ends the job: `reason` is a failure_reason (photoslot/outcomes.py),
    `detail` is for the operator, `answer_status` overrides the reason's usual HTTP status."""

    def __init__(self, reason: str, detail: str, answer_status: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.answer_status = answer_status


# Called once per HTTP request sent to the provider (quota accounting, job counters). It may raise
# ProviderFailure("quota_exhausted", …) to stop the call before the request is sent.
RequestHook = Callable[[], Awaitable[None]]
# Called once per status poll (Turbotext get_result).
PollHook = Callable[[], Awaitable[None]]
# Called with the provider's own job reference as soon as it is known (Turbotext queueid).
ReferenceHook = Callable[[str], Awaitable[None]]


# Called after every call with what it says about the provider's health (photoslot/health_rule.py):
# (False, problem) for a connection error, an HTTP 5xx or 429; (True, None) when the provider answered.
# `down_reason=` (a keyword) says the provider cannot serve anyone with this key until someone acts —
# no quota for the model, a spent tariff, a region it does not serve — in words for the
# admin: the provider is taken down at once with that reason, not after `down_after_failures` calls.
HealthHook = Callable[..., Awaitable[None]]


class Problems:
    """The failed calls of one job, for the operator: "HTTP 503 × 17 from gemini, last: …"."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.kinds: collections.Counter[str] = collections.Counter()
        self.last: str | None = None

    def add(self, problem: str) -> None:
        self.kinds[kind_of(problem)] += 1
        self.last = problem

    def __len__(self) -> int:
        return sum(self.kinds.values())

    def summary(self) -> str:
        counts = ", ".join(f"{k} × {n}" for k, n in self.kinds.most_common())
        return f"{counts} from {self.provider}, last: {self.last}" if self.last else f"no failed call to {self.provider}"


def kind_of(problem: str) -> str:
    """"HTTP 503 UNAVAILABLE …" → "HTTP 503"; "ClientConnectorError: …" → "ClientConnectorError"."""
    m = re.match(r"(HTTP \d{3})", problem)
    return m.group(1) if m else problem.split(":", 1)[0][:60]


async def _nothing(*_args, **_kwargs) -> None:
    return None


NO_HOOK = _nothing


class ProviderClient(abc.ABC):
    """A provider client: one per provider per process, reused for every job."""

    # True: the provider fetches its inputs by URL, so the worker makes public links for the photo
    # and the templates (ProviderInput.urls) instead of passing their bytes.
    needs_public_links: bool = False
    # The largest request body the provider takes, images included (None: no such limit); the worker
    # reduces the images until request_bytes() fits (worker/attempt.py `_fit_request`).
    max_request_bytes: int | None = None

    def __init__(self, api_key: str | None, max_attempts: int = 3) -> None:
        self.api_key = api_key
        self.max_attempts = max(1, int(max_attempts))  # providers.<p>.max_attempts: a retry cap besides the deadline

    def use_key(self, key: str | None) -> None:
        """The key for the calls from now on; None keeps the current one."""
        if key and key != self.api_key:
            self.api_key = key
            self.key_changed()

    def key_changed(self) -> None:
        """Drop whatever was bound to the old key (an SDK client, say)."""

    def request_bytes(self, operation: str, data: ProviderInput) -> int:
        """An upper estimate of the request body this input makes (see max_request_bytes)."""
        return 0

    @abc.abstractmethod
    async def run(self, operation: str, data: ProviderInput, *, deadline: float, on_request: RequestHook,
                  on_poll: PollHook = NO_HOOK, on_reference: ReferenceHook = NO_HOOK,
                  on_health: HealthHook = NO_HOOK) -> ProviderResult:
        """Run one catalogue operation until `deadline` (event-loop time) and at most `max_attempts`
        requests: a result, or ProviderFailure, or asyncio.TimeoutError when the deadline cut it off."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections (the pool is stopping)."""
