"""A 17 MB camera JPEG, made at test time from tests/fixtures (a file that size is not committed).

What a 24 MP body writes at its finest JPEG setting on a detailed, high-ISO scene: the booth photo
upscaled to 6000×4000, camera noise added, the fixture's EXIF, and — like Canon, Nikon or Sony — an
MPF preview after the main image. 24 MP is exactly `max_input_megapixels`, so photoslot would send
its main image's bytes as they are: about 17 MB, 22.7 MB once base64 makes 3 bytes 4 — over
Gemini's 20 MiB request limit.
"""
from __future__ import annotations

import functools
import io

from PIL import Image, ImageChops

from tests.conftest import FIXTURES

SIZE = (6000, 4000)
MIN_BYTES = 17_000_000
MAX_BYTES = 19_500_000  # under ingest.max_upload_mb (20 MiB) with the form around it


@functools.lru_cache(maxsize=1)
def big_camera_jpeg() -> bytes:
    with Image.open(FIXTURES / "dslr_landscape.jpg") as src:
        exif = src.info.get("exif")
        base = src.convert("RGB").resize(SIZE, Image.Resampling.BILINEAR)
    noise = Image.effect_noise(SIZE, 24).convert("RGB")
    photo = ImageChops.add(base, noise, scale=1.0, offset=-128)
    preview = photo.resize((640, 427))
    for quality in range(93, 100):
        out = io.BytesIO()
        photo.save(out, "MPO", quality=quality, exif=exif, save_all=True, append_images=[preview])
        if out.tell() >= MIN_BYTES:
            break
    data = out.getvalue()
    assert MIN_BYTES <= len(data) <= MAX_BYTES, len(data)
    return data
