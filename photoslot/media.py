"""Files under the media root: uploads (short-lived), results (retention), templates.

Image types are decided from the bytes, never from a part's Content-Type. Pillow work is
CPU-bound: callers run these functions in a thread (asyncio.to_thread).
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from photoslot.errors import PhotoslotError

log = logging.getLogger("photoslot.media")

MIME_EXT = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
FORMAT_MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
PIL_FORMAT = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
MAX_PIXELS = 80_000_000  # a 60 MP camera fits; a decompression bomb does not

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class InvalidImage(ValueError):
    """Bytes that are not a usable image of a supported type."""


class MediaTooLarge(PhotoslotError):
    """An admin-supplied image (template, registered media) over the size limit."""

    code = "payload_too_large"
    http_status = 413
    exit_code = 2


class UnsupportedMedia(PhotoslotError):
    """An admin-supplied file that is not a readable JPEG, PNG or WebP."""

    code = "unsupported_media_type"
    http_status = 415
    exit_code = 2


def max_upload_bytes(cfg) -> int:
    """ingest.max_upload_mb in bytes: the one size cap of every image that comes in (ingest,
    templates, registered media)."""
    return int(float(cfg.get("ingest.max_upload_mb")) * 1024 * 1024)


def sniff_mime(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass
class MediaStore:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def templates(self) -> Path:
        return self.root / "templates"

    @property
    def public(self) -> Path:
        """Copies made for a provider's public link (the upright photo); as short-lived as uploads."""
        return self.root / "public"

    def ensure(self) -> None:
        for d in (self.uploads, self.results, self.templates, self.public):
            d.mkdir(parents=True, exist_ok=True)

    def upload_path(self, job_id, mime: str | None = None) -> Path:
        return self.uploads / f"{job_id}.{MIME_EXT.get(mime, 'upload')}"

    def result_path(self, job_id, mime: str) -> Path:
        return self.results / f"{job_id}.{MIME_EXT[mime]}"

    def inside(self, path: str | Path) -> Path:
        """Resolve a stored path and refuse anything outside the media root."""
        p = Path(path).resolve()
        if self.root != p and self.root not in p.parents:
            raise ValueError(f"path outside the media root: {p}")
        return p

    def write(self, path: Path, data: bytes) -> None:
        """Write a file the store will own (a template, a public link's copy), its folder made on demand."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def remove(self, path: str | Path | None) -> bool:
        if not path:
            return False
        try:
            self.inside(path).unlink()
            return True
        except FileNotFoundError:
            return False

    def writable(self) -> bool:
        probe = self.root / f".probe-{os.getpid()}"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
            return True
        except OSError:
            return False


def check_image(path: Path, mime: str) -> tuple[int, int]:
    """Parse the header (cheap, no full decode): the type must agree with the bytes, the size sane."""
    try:
        with Image.open(path) as im:
            if PIL_FORMAT.get(mime) != im.format:
                raise InvalidImage(f"content is not a valid {mime}")
            w, h = im.size
    except Image.DecompressionBombError:
        raise InvalidImage("image dimensions are too large") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidImage(f"content is not a readable image ({exc.__class__.__name__})") from None
    if w * h > MAX_PIXELS:
        raise InvalidImage(f"image dimensions {w}x{h} are too large")
    if w < 1 or h < 1:
        raise InvalidImage("image has no pixels")
    return w, h


def check_image_bytes(data: bytes, max_bytes: int, what: str = "image") -> str:
    """The MIME of an admin-supplied image, decided from its bytes; the same rules as ingest."""
    if len(data) > max_bytes:
        raise MediaTooLarge(f"{what} is larger than {max_bytes / (1024 * 1024):g} MB",
                            {"size_bytes": len(data), "max_bytes": max_bytes})
    mime = sniff_mime(data[:16])
    if mime is None:
        raise UnsupportedMedia(f"{what} is not a JPEG, PNG or WebP image")
    try:
        check_image(io.BytesIO(data), mime)
    except InvalidImage as exc:
        raise UnsupportedMedia(f"{what}: {exc}") from None
    return mime


def prepare_for_provider(path: Path, mime: str) -> tuple[bytes, str]:
    """Bytes to send: turned upright when the camera stored them sideways (providers ignore EXIF)."""
    data = Path(path).read_bytes()
    if mime != "image/jpeg":
        return data, mime
    with Image.open(io.BytesIO(data)) as im:
        orientation = im.getexif().get(0x0112, 1)
        if orientation in (None, 1):
            return data, mime
        upright = ImageOps.exif_transpose(im)
        out = io.BytesIO()
        upright.convert("RGB").save(out, "JPEG", quality=92)
        return out.getvalue(), "image/jpeg"


def encode_output(data: bytes, output_format: str) -> tuple[bytes, str]:
    """Validate a provider's image and re-encode it to the slot's output format.

    When the provider already answered in the slot's format (and upright), the bytes are kept:
    a header parse plus a structural check (JPEG end marker, PNG chunk CRCs) proves a usable
    image without a full decode, which would cost tens of ms per photo on the answer's path.
    """
    target = FORMAT_MIME.get(output_format or "jpeg", "image/jpeg")
    try:
        with Image.open(io.BytesIO(data)) as im:
            source_mime = Image.MIME.get(im.format or "")
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise InvalidImage(f"provider image dimensions {w}x{h} are too large")
            orientation = im.getexif().get(0x0112, 1)
            if source_mime == target and orientation in (None, 1):
                if target == "image/jpeg" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
                    raise InvalidImage("provider returned a truncated JPEG")
                if target == "image/png":
                    with Image.open(io.BytesIO(data)) as fresh:  # verify() must follow open() directly
                        fresh.verify()
                return data, target
            im.load()
            upright = im if orientation in (None, 1) else ImageOps.exif_transpose(im)
            out = io.BytesIO()
            if target == "image/jpeg":
                upright.convert("RGB").save(out, "JPEG", quality=92)
            else:
                upright.save(out, PIL_FORMAT[target])
            return out.getvalue(), target
    except InvalidImage:
        raise
    except Image.DecompressionBombError:
        raise InvalidImage("provider image dimensions are too large") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"provider returned no usable image ({exc.__class__.__name__})") from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
