"""Pillow work of the emulator: inspect inputs, produce a visibly transformed copy.

All functions are synchronous and CPU-bound; callers run them with ``asyncio.to_thread``.
EXIF orientation is deliberately NOT applied: like a real provider, the emulator transforms
the pixels as stored.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections import OrderedDict
from typing import Any

from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
BORDER_COLOUR = (230, 0, 180)
# What Gemini's image models answer, by aspect ratio — the tables of Google's image-generation page
# (ai.google.dev/gemini-api/docs/image-generation, "aspect ratios and image size"):
# gemini-2.5-flash-image answers about 1 MP whatever the photo's size (1290 tokens);
# gemini-3-pro-image-preview answers at 1K (the default), 2K or 4K (imageConfig.imageSize).
FLASH_IMAGE_SIZES = {
    "1:1": (1024, 1024), "2:3": (832, 1248), "3:2": (1248, 832), "3:4": (864, 1184), "4:3": (1184, 864),
    "4:5": (896, 1152), "5:4": (1152, 896), "9:16": (768, 1344), "16:9": (1344, 768), "21:9": (1536, 672),
}
PRO_IMAGE_SIZES = {
    "1K": {"1:1": (1024, 1024), "2:3": (848, 1264), "3:2": (1264, 848), "3:4": (896, 1200), "4:3": (1200, 896),
           "4:5": (928, 1152), "5:4": (1152, 928), "9:16": (768, 1376), "16:9": (1376, 768), "21:9": (1584, 672)},
    "2K": {"1:1": (2048, 2048), "2:3": (1696, 2528), "3:2": (2528, 1696), "3:4": (1792, 2400), "4:3": (2400, 1792),
           "4:5": (1856, 2304), "5:4": (2304, 1856), "9:16": (1536, 2752), "16:9": (2752, 1536),
           "21:9": (3168, 1344)},
    "4K": {"1:1": (4096, 4096), "2:3": (3392, 5056), "3:2": (5056, 3392), "3:4": (3584, 4800), "4:3": (4800, 3584),
           "4:5": (3712, 4608), "5:4": (4608, 3712), "9:16": (3072, 5504), "16:9": (5504, 3072),
           "21:9": (6336, 2688)},
}
MODEL_SIZES = tuple(FLASH_IMAGE_SIZES.values())


def nearest_ratio(width: int, height: int) -> str:
    """The listed aspect ratio nearest to a picture of this size (the models follow the input's)."""
    ratio = math.log(width / height)
    return min(FLASH_IMAGE_SIZES, key=lambda r: abs(math.log(int(r.split(":")[0]) / int(r.split(":")[1])) - ratio))


def model_size(width: int, height: int) -> tuple[int, int]:
    """gemini-2.5-flash-image's output size for a photo of this stored size (nearest aspect ratio)."""
    return FLASH_IMAGE_SIZES[nearest_ratio(width, height)]


def gemini_output_size(model: str, aspect_ratio: str | None, image_size: str | None,
                       width: int, height: int) -> tuple[int, int]:
    """The size the real model answers at: its table's entry for the requested aspect ratio (else the
    input's nearest) and, on gemini-3-pro-image-preview, the requested image size (else 1K)."""
    ratio = aspect_ratio if aspect_ratio in FLASH_IMAGE_SIZES else nearest_ratio(width, height)
    if model.startswith("gemini-3-pro-image"):
        return PRO_IMAGE_SIZES.get(image_size or "1K", PRO_IMAGE_SIZES["1K"])[ratio]
    return FLASH_IMAGE_SIZES[ratio]


class NotAnImage(ValueError):
    pass


def extension_for(mime: str) -> str:
    return _EXT.get(mime, "png")


def describe(data: bytes, declared_mime: str | None, source: str) -> dict[str, Any]:
    """Metadata for the request log: never the bytes themselves."""
    info: dict[str, Any] = {
        "mime": declared_mime,
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "width": None,
        "height": None,
        "source": source,
        # What a test needs to see that a photo arrived as a provider should get it: the
        # container Pillow recognises ("MPO" = a JPEG still carrying its MPF previews), how many
        # images it holds, and the EXIF orientation left in it (None = no tag).
        "format": None,
        "frames": None,
        "orientation": None,
    }
    try:
        with Image.open(io.BytesIO(data)) as im:
            info["width"], info["height"] = im.size
            info["format"] = im.format
            info["frames"] = getattr(im, "n_frames", 1)
            info["orientation"] = im.getexif().get(0x0112)
            if not declared_mime:
                info["mime"] = Image.MIME.get(im.format or "", None)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        pass
    return info


_CACHE: "OrderedDict[tuple, bytes]" = OrderedDict()
_CACHE_SIZE = 16
_CACHE_LOCK = threading.Lock()


def transform(data: bytes, output_mime: str = "image/png", output_size: str = "input", *,
              size: tuple[int, int] | None = None, overlay: bytes | None = None) -> bytes:
    """Sepia-tone the image and draw a magenta border: at the stored pixels' size, ("model") at
    gemini-2.5-flash-image's size for their aspect ratio, or at `size` when given. `overlay` (Turbotext's
    deepfake_photo: the face put in) is pasted small in the top-left corner, so a result shows which
    photo it was made from and which went into it.

    The same photo sent again (benchmarks, rehearsal loops) is transformed once: on a 2-core
    studio PC the emulator's Pillow work would otherwise starve the system under test.
    """
    key = (hashlib.sha256(data).hexdigest(), output_mime, output_size, size,
           hashlib.sha256(overlay).hexdigest() if overlay else None)
    with _CACHE_LOCK:  # called from worker threads
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            return cached
    result = _transform(data, output_mime, output_size, size, overlay)
    with _CACHE_LOCK:
        _CACHE[key] = result
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result


def _transform(data: bytes, output_mime: str, output_size: str = "input", size: tuple[int, int] | None = None,
               overlay: bytes | None = None) -> bytes:
    try:
        with Image.open(io.BytesIO(data)) as im:
            if size is None:
                size = model_size(*im.size) if output_size == "model" else im.size
            if size != im.size:
                im.draft("RGB", size)  # a JPEG decodes straight at a reduced scale
            im.load()
            rgb = im.convert("RGB")
            if rgb.size != size:
                rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise NotAnImage(str(exc)) from exc
    grey = ImageOps.grayscale(rgb)
    out = ImageOps.colorize(grey, black=(40, 20, 5), white=(255, 236, 200), mid=(170, 120, 70))
    w, h = out.size
    border = max(2, min(w, h) // 40)
    if overlay:
        try:
            with Image.open(io.BytesIO(overlay)) as face:
                face.draft("RGB", (w // 4, h // 4))
                face = face.convert("RGB")
                face.thumbnail((max(1, w // 4), max(1, h // 4)))
                out.paste(face, (border, border))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise NotAnImage(str(exc)) from exc
    ImageDraw.Draw(out).rectangle([0, 0, w - 1, h - 1], outline=BORDER_COLOUR, width=border)
    buf = io.BytesIO()
    fmt = _FORMATS.get(output_mime, "PNG")
    if fmt == "PNG":
        out.save(buf, fmt, compress_level=1)
    else:
        out.save(buf, fmt, quality=90)
    return buf.getvalue()
