"""What every provider client returns or raises."""
from __future__ import annotations

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


class ProviderFailure(Exception):
    """A provider outcome that ends the job: reason per DESIGN §4, detail for the operator."""

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


async def _nothing(*_args) -> None:
    return None


NO_HOOK = _nothing
