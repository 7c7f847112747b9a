"""Domain errors. The CLI turns them into one stderr line and an exit code; the admin API into
its JSON error shape and a status."""
from __future__ import annotations


class PhotoslotError(Exception):
    code = "error"
    http_status = 400
    exit_code = 1

    def __init__(self, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ValidationError(PhotoslotError):
    """Per-field messages in `details` (field → message)."""

    code = "validation_error"
    http_status = 422
    exit_code = 2

    def __init__(self, errors: dict[str, str], message: str | None = None) -> None:
        first = next(iter(errors.items()))
        super().__init__(message or f"{first[0]}: {first[1]}", errors)


class NotFound(PhotoslotError):
    code = "not_found"
    http_status = 404
    exit_code = 2


class Conflict(PhotoslotError):
    code = "conflict"
    http_status = 409
    exit_code = 1
