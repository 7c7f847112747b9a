"""Files under the media root (uploads, results and their thumbnails, templates) and the pixel
work done on photos: the ingest check, the copy a provider gets, the slot's output, thumbnails.

Types and structure are decided from the bytes (photos.py), never from a part's Content-Type or
a library's format name. Pixels are decoded only where a rule needs them, and as small as the rule
allows: a JPEG is checked at 1/8 scale, turned or downscaled from a DCT-scaled decode, and its
thumbnail made from one. At most `DECODE_SLOTS` decodes run at once in the process, on their own
threads (`off_loop`; thumbnails on one thread of their own, so they can never take every slot),
and the memory is handed back to the OS after a big one.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import functools
import hashlib
import io
import logging
import os
import platform
import struct
import sys
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from photoslot import photos
from photoslot.errors import PhotoslotError
from photoslot.photos import MAX_PIXELS

log = logging.getLogger("photoslot.media")

MIME_EXT = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
FORMAT_MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
PIL_FORMAT = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
THUMBNAIL_PX = 160
DECODE_SLOTS = 2         # decodes at once per process: the memory ceiling, and the booths' CPU share
BIG_DECODE_PIXELS = 4_000_000  # after a decode this big, freed memory is handed back to the OS
JPEG_QUALITY = 92

# Pillow's own bomb guard stays as a backstop; photos.inspect refuses above MAX_PIXELS first.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# EXIF orientation -> the transpose that stands the picture upright (as ImageOps.exif_transpose).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


class InvalidImage(ValueError):
    """Bytes that are not a usable image of a supported type."""


class UnsupportedImage(InvalidImage):
    """Not a JPEG, PNG or WebP (or one too large): ingest answers 415 unsupported_media_type."""


class DamagedImage(InvalidImage):
    """A JPEG, PNG or WebP that is cut short, corrupt or lying about its size: ingest answers
    422 invalid_image."""


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
    return photos.sniff(head)


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

    @staticmethod
    def thumbnail_path(result_path: str | Path) -> Path:
        """Where a result's thumbnail lives: beside it, named after it, so it goes with it."""
        p = Path(result_path)
        return p.with_name(p.name.split(".", 1)[0] + ".thumb.jpg")

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

    def remove_result(self, path: str | Path | None) -> bool:
        """A result file and its thumbnail (if one was made). True when the result was there."""
        if not path:
            return False
        self.remove(self.thumbnail_path(path))
        return self.remove(path)

    def writable(self) -> bool:
        probe = self.root / f".probe-{os.getpid()}"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
            return True
        except OSError:
            return False


# ------------------------------------------------------------------------------ decode ceiling

DECODES: collections.Counter = collections.Counter()  # purpose -> decodes done (tests read it)
_decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)
_count_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}
# Booth work (ingest check, provider copy, slot output) and thumbnails get their own threads: a
# burst of first thumbnail requests can hold one decode slot at most, never both.
LANES = {"photos": DECODE_SLOTS, "thumbnails": 1}


async def off_loop(fn, *args, lane: str = "photos", **kwargs):
    """Run a function of this module on the image threads, so that waiting for a decode slot never
    holds a thread of the default executor (file reads, password checks)."""
    pool = _pools.get(lane)
    if pool is None:
        pool = _pools[lane] = ThreadPoolExecutor(max_workers=LANES[lane], thread_name_prefix=f"photoslot-{lane}")
    return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args, **kwargs))


@contextlib.contextmanager
def _decoding(purpose: str, pixels: int):
    with _decode_slots:
        with _count_lock:
            DECODES[purpose] += 1
        try:
            yield
        finally:
            if pixels >= BIG_DECODE_PIXELS:
                _hand_back_memory()


def _load_trim():
    """glibc's malloc_trim, or None elsewhere. Freed image memory otherwise stays in the
    process's arenas (glibc raises its mmap threshold after the first big free)."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _load_trim()


def _hand_back_memory() -> None:
    if _malloc_trim is not None:
        _malloc_trim(0)


# ------------------------------------------------------------------------------ ingest check

def _read(source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if hasattr(source, "read"):
        return source.read()
    return Path(source).read_bytes()


def check_image(source, mime: str) -> photos.Photo:
    """Every rule a photo must pass before a job is queued (path, file object or bytes).

    Structure first (photos.inspect: markers, chunks, checksums, sizes, a PNG's whole image
    data); then, for JPEG and WebP, a decode — at 1/8 scale for a JPEG, which still reads every
    entropy-coded block. Raises UnsupportedImage (415) or DamagedImage (422).
    """
    data = _read(source)
    try:
        photo = photos.inspect(data)
    except photos.NotAPhoto as exc:
        raise UnsupportedImage(str(exc)) from None
    except photos.DamagedPhoto as exc:
        raise DamagedImage(str(exc)) from None
    if photo.mime != mime:
        raise UnsupportedImage(f"content is not a valid {mime}")
    whole = photo
    if photo.mime == "image/jpeg":
        main, photo = photos.main_image(data, photo)
        _jpeg_data_check(main, photo)
    elif photo.mime == "image/webp":
        _webp_data_check(data, photo)
    if isinstance(source, (str, Path)):
        _inspected.keep(str(source), len(data), whole)
    return photo


class _Inspected:
    """The structure check_image() parsed from an upload, for prepare_for_provider() of the same
    file in the same process (an in-process worker): the photo is not parsed twice. Keyed by
    path and size; an upload is written once and never changed."""

    SIZE = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._photos: collections.OrderedDict[str, tuple[int, photos.Photo]] = collections.OrderedDict()

    def keep(self, path: str, size: int, photo: photos.Photo) -> None:
        with self._lock:
            self._photos[path] = (size, photo)
            while len(self._photos) > self.SIZE:
                self._photos.popitem(last=False)

    def take(self, path: str, size: int) -> photos.Photo | None:
        with self._lock:
            kept = self._photos.pop(path, None)
        return kept[1] if kept is not None and kept[0] == size else None


_inspected = _Inspected()


# Bytes of a scan held back on the first pass of the JPEG check; encoders pad only the last byte,
# so a decoder that is done without them read garbage as image data.
JPEG_TAIL = 8
_NO_MARKER = b"\x00" * 16  # libjpeg-turbo reads up to 57 bits ahead
MAX_INTERVAL_CHECKS = 512  # restart intervals decoded one by one (evenly spread when there are more)


def _jpeg_data_check(main: bytes, photo: photos.Photo) -> None:
    """Decode at 1/8 scale, and turn libjpeg's corrupt-data *warnings* (Pillow hides them; the
    photo would reach the provider grey or garbled) into refusals.

    libjpeg warns when entropy-coded data desynchronises: the decoder either runs into the next
    marker early or is done before it. So each stretch of entropy-coded data that ends in a marker
    is fed to the decoder by hand, first without its last bytes (a decoder already done read
    garbage), then with zero bytes instead of its marker (a decoder still hungry read garbage):
    the whole scan of a single-scan JPEG, or each restart interval of one with restart markers,
    decoded as a small image of its own. Progressive and multi-scan JPEGs wait for their end
    marker whatever the data, so for them the structure and data-amount checks of
    photos.inspect() and a plain decode are what there is.
    """
    with _decoding("check", photo.pixels // 64), Image.open(io.BytesIO(main)) as im:
        im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
        mode, args, scale = im.mode, im.tile[0].args, im.decoderconfig[0]
        layout = photo.intervals
        whole = photo.scans == 1 and layout is None
        if whole:
            _drive(main[:photo.last_scan_start], main[photo.last_scan_start:photo.last_scan_end], mode, args,
                   (photo.width, photo.height), scale)
            return
        try:
            im.load()
        except (OSError, ValueError, SyntaxError) as exc:
            raise DamagedImage(f"the JPEG's image data is corrupt or cut short ({exc})") from None
    if layout is not None:
        spans = list(layout.spans(photo.last_scan_start, photo.last_scan_end))
        step = -(-len(spans) // MAX_INTERVAL_CHECKS)
        for i in sorted(set(range(0, len(spans), step)) | {len(spans) - 1}):
            start, end, mcus = spans[i]
            size = _interval_size(mcus, layout.mcu_size)
            if size is not None:
                head = b"\xff\xd8" + layout.tables + _resized_frame(layout.frame, size) + layout.scan_header
                _drive(head, main[start:end], mode, args, size, 8)


def _interval_size(mcus: int, mcu: tuple[int, int]) -> tuple[int, int] | None:
    """A picture made of exactly `mcus` MCUs — one row if it fits a JPEG's 65,535 px, else a
    rectangle; None when no rectangle fits (a prime count of very many)."""
    for columns in range(min(mcus, 65535 // mcu[0]), 0, -1):
        if mcus % columns == 0 and (mcus // columns) * mcu[1] <= 65535:
            return columns * mcu[0], (mcus // columns) * mcu[1]
    return None


def _resized_frame(segment: bytes, size: tuple[int, int]) -> bytes:
    return segment[:5] + struct.pack(">HH", size[1], size[0]) + segment[9:]


def _drive(head: bytes, scan: bytes, mode: str, args, size: tuple[int, int], scale: int) -> None:
    """Decode headers + one stretch of entropy-coded data by hand (see _jpeg_data_check)."""
    out = Image.new(mode, (-(-size[0] // scale), -(-size[1] // scale)))
    decoder = Image._getdecoder(mode, "jpeg", args, (scale, 0))
    decoder.setimage(out.im, (0, 0) + out.size)
    try:
        if len(scan) > 2 * JPEG_TAIL:
            first = head + scan[:-JPEG_TAIL]
            used, err = decoder.decode(first)
            if used < 0:
                raise DamagedImage("the JPEG's image data is corrupt (the decoder finished before the data ended)"
                                   if err >= 0 else "the JPEG's image data is corrupt")
            rest = first[used:] + scan[-JPEG_TAIL:] + _NO_MARKER
        else:
            rest = head + scan + _NO_MARKER
        used, err = decoder.decode(rest)
        if used >= 0:
            raise DamagedImage("the JPEG's image data is corrupt or cut short (the decoder ran out of data)")
        if err < 0:
            raise DamagedImage("the JPEG's image data is corrupt")
    finally:
        decoder.cleanup()
        out.close()


def _webp_data_check(data: bytes, photo: photos.Photo) -> None:
    """libwebp refuses corrupt and cut-short bitstreams itself; it has no reduced decode, so this
    one is full size, inside the decode ceiling."""
    with _decoding("check", photo.pixels), Image.open(io.BytesIO(data)) as im:
        try:
            im.load()
        except (OSError, ValueError, SyntaxError) as exc:
            raise DamagedImage(f"the WebP's image data is corrupt or cut short ({exc})") from None


def check_image_bytes(data: bytes, max_bytes: int, what: str = "image") -> str:
    """The MIME of an admin-supplied image, decided from its bytes; the same rules as ingest."""
    if len(data) > max_bytes:
        raise MediaTooLarge(f"{what} is larger than {max_bytes / (1024 * 1024):g} MB",
                            {"size_bytes": len(data), "max_bytes": max_bytes})
    mime = sniff_mime(data[:16])
    if mime is None:
        raise UnsupportedMedia(f"{what} is not a JPEG, PNG or WebP image")
    try:
        check_image(data, mime)
    except InvalidImage as exc:
        raise UnsupportedMedia(f"{what}: {exc}") from None
    return mime


# ------------------------------------------------------------------------------ to the provider

def prepare_for_provider(path, mime: str, max_megapixels: float | None = None) -> tuple[bytes, str]:
    """The bytes a provider gets: the main image only, upright, at most `max_megapixels`.

    The cheap path — an upright JPEG, PNG or WebP within the limit — sends the file's own bytes
    (an MPF preview and its index cut off by bytes), with no decode. Otherwise one decode: a JPEG
    at the DCT scale (1/2, 1/4, 1/8) that brings it within the limit, turned, re-encoded.
    """
    data = _read(path)
    photo = _inspected.take(str(path), len(data)) if isinstance(path, (str, Path)) else None
    if photo is None:  # not checked by this process (a `work` process, a template)
        try:
            photo = photos.inspect(data, pixel_data=False)
        except (photos.NotAPhoto, photos.DamagedPhoto) as exc:
            raise InvalidImage(str(exc)) from None
    main, photo = photos.main_image(data, photo)
    limit = int(max_megapixels * 1_000_000) if max_megapixels else 0
    too_big = bool(limit) and photo.pixels > limit
    cmyk = photo.mime == "image/jpeg" and photo.components == 4  # providers expect RGB
    if photo.orientation == 1 and not too_big and not cmyk:
        return main, photo.mime
    return _reencode(main, photo, limit)


def shrink_to(data: bytes, mime: str, max_bytes: int) -> tuple[bytes, str]:
    """The picture re-encoded to at most `max_bytes`: first at full size as JPEG at the quality every
    provider copy uses, then smaller (each side by the square root of the size still to shed), until it
    fits. A picture with transparency stays a PNG and only gets smaller. For a request limit that
    counts the encoded bytes (Gemini's 20 MiB); the models work at about 1 MP, so this loses nothing
    they would have seen."""
    if len(data) <= max_bytes:
        return data, mime
    with Image.open(io.BytesIO(data)) as src, _decoding("provider", src.width * src.height):
        src.load()
        icc = src.info.get("icc_profile")
        im = _colour(src) or _detach(src)
        try:
            return _encode_under(im, icc, max_bytes)
        finally:
            im.close()


def _encode_under(im: Image.Image, icc, max_bytes: int) -> tuple[bytes, str]:
    alpha = "A" in im.getbands()
    scale = 1.0
    for _ in range(12):
        frame = im if scale == 1.0 else im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                                                  Image.Resampling.LANCZOS)
        out = io.BytesIO()
        if alpha:
            frame.save(out, "PNG", compress_level=6, icc_profile=icc)
        else:
            (frame if frame.mode == "RGB" else frame.convert("RGB")).save(out, "JPEG", quality=JPEG_QUALITY,
                                                                          icc_profile=icc)
        if frame is not im:
            frame.close()
        if out.tell() <= max_bytes:
            return out.getvalue(), "image/png" if alpha else "image/jpeg"
        scale *= max(0.3, min(0.9, (max_bytes / out.tell()) ** 0.5 * 0.95))
    raise InvalidImage(f"cannot bring this picture under {max_bytes} bytes")


def _scale_for(photo: photos.Photo, limit: int) -> int:
    """The power of two each side is divided by to fit `limit` pixels (1 = full size)."""
    factor = 1
    while limit and photo.pixels > limit * factor * factor and factor < 64:
        factor *= 2
    return factor


def _reencode(main: bytes, photo: photos.Photo, limit: int) -> tuple[bytes, str]:
    factor = _scale_for(photo, limit)
    out = io.BytesIO()
    with _decoding("provider", photo.pixels // (factor * factor)):
        im = _decode_scaled(main, factor, photo)
        try:
            icc = im.info.get("icc_profile")
            im = _swap(im, _colour(im))
            im = _swap(im, _upright(im, photo.orientation))
            if "A" in im.getbands():  # keep transparency lossless
                im.save(out, "PNG", compress_level=1, icc_profile=icc)
                return out.getvalue(), "image/png"
            im.save(out, "JPEG", quality=JPEG_QUALITY, icc_profile=icc)
            return out.getvalue(), "image/jpeg"
        finally:
            im.close()


def _decode_scaled(data: bytes, factor: int, photo: photos.Photo | None = None) -> Image.Image:
    """Decode with each side divided by `factor` without a full-size copy where the format allows:
    a JPEG by the decoder's DCT scaling (then box reduction for the rest), an 8-bit PNG strip by
    strip. Anything else (16-bit or interlaced PNG, WebP) is decoded whole, then reduced."""
    if factor > 1 and photo is not None and photo.mime == "image/png" and photo.bit_depth == 8 \
            and not photo.interlaced:
        return _png_in_strips(data, photo, factor)
    with Image.open(io.BytesIO(data)) as src:
        if factor > 1 and src.format in ("JPEG", "MPO"):
            src.draft(src.mode, (max(1, src.width // factor), max(1, src.height // factor)))
        src.load()
        done = src.decoderconfig[0] if src.decoderconfig else 1
        im = _colour(src) or _detach(src)  # reduce() takes 8-bit modes only
    rest = max(1, factor // done)
    return _swap(im, im.reduce(rest)) if rest > 1 else im


PNG_STRIP_BYTES = 4 << 20  # filtered image data decoded at once by _png_in_strips
PNG_RAWMODE = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}  # 8-bit colour types -> Pillow


def _png_in_strips(data: bytes, photo: photos.Photo, factor: int) -> Image.Image:
    """A big 8-bit PNG reduced by `factor` while only a few MB of it are ever decoded at once.

    The image data is inflated here and cut into strips of whole rows; Pillow's PNG decoder
    unfilters each strip into a small image, which is box-reduced into the output. A row's filter
    may refer to the row above, so every strip after the first is led by a copy of the previous
    strip's last row, unfiltered (filter type 0), and reduced from below it.
    """
    header, idat = photos.png_parts(data)
    width, height, _depth, color = header[:4]
    mode = PNG_RAWMODE[color]
    stride = photos.png_row_bytes(photo)
    rows_per_strip = factor * max(1, PNG_STRIP_BYTES // (stride * factor))
    palette = None
    if color == 3:
        with Image.open(io.BytesIO(data)) as head:  # the header only: no pixels are decoded
            palette = (head.palette.copy(), head.info.get("transparency"))
    out: Image.Image | None = None
    above: bytes | None = None  # the previous strip's last row, unfiltered
    pending = bytearray()
    y = 0

    def strip(rows: int) -> None:
        nonlocal out, above, y
        lead = 0 if above is None else 1
        part = Image.new(mode, (width, rows + lead))
        packer = zlib.compressobj(0)  # the decoder wants a zlib stream; stored blocks cost a copy
        stream = b"".join([packer.compress(b"\x00" + above) if lead else b"",
                           packer.compress(memoryview(pending)[:rows * stride]), packer.flush()])
        del pending[:rows * stride]
        decoder = Image._getdecoder(mode, "zip", mode)
        decoder.setimage(part.im, (0, 0, width, rows + lead))
        try:
            status, err = decoder.decode(stream)
        finally:
            decoder.cleanup()
        if err < 0 or status >= 0:
            raise DamagedImage("the PNG's image data is corrupt")
        above = part.crop((0, rows + lead - 1, width, rows + lead)).tobytes("raw", mode)
        if palette is not None:
            part.putpalette(palette[0])
            if palette[1] is not None:
                part.info["transparency"] = palette[1]
            part = _swap(part, part.convert("RGB" if palette[1] is None else "RGBA"))
        small = part.reduce(factor, box=(0, lead, width, rows + lead))
        part.close()
        if out is None:
            out = Image.new(small.mode, (-(-width // factor), -(-height // factor)))
        out.paste(small, (0, y // factor))
        y += rows

    for chunk in photos.inflate(idat):
        pending += chunk
        while len(pending) >= rows_per_strip * stride:
            strip(rows_per_strip)
    if len(pending) != (height - y) * stride:
        raise DamagedImage("the PNG's image data does not match its header")
    if pending:
        strip(height - y)
    return out


def _detach(im: Image.Image) -> Image.Image:
    """The decoded image without its file (no pixel copy)."""
    out = im._new(im.im)
    out.info = dict(im.info)
    return out


def _colour(im: Image.Image) -> Image.Image | None:
    """A mode a provider and a JPEG encoder take: RGB, L, or RGBA/LA where there is alpha."""
    if im.mode in ("RGB", "L", "RGBA", "LA"):
        return None
    if im.mode == "1":
        return im.convert("L")
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return im.convert("I").point(lambda v: v / 256).convert("L") if im.mode != "F" else im.convert("L")
    return im.convert("RGBA" if "A" in im.getbands() else "RGB")


def _upright(im: Image.Image, orientation: int) -> Image.Image | None:
    method = UPRIGHT.get(orientation)
    return im.transpose(method) if method is not None else None


def _swap(im: Image.Image, new: Image.Image | None) -> Image.Image:
    """Keep at most two full copies alive: the old one is freed as soon as the new one exists."""
    if new is None or new is im:
        return im
    im.close()
    return new


# ------------------------------------------------------------------------------ from the provider

def output_mime(output_format: str | None, sent_mime: str | None) -> str:
    """The type a booth gets back: the slot's `output_format` when it names one, else the type the
    booth sent. DSLR Remote Pro saves the answer in place of the photo it uploaded, under the same
    name, so a PNG booth that got a JPEG back would hold JPEG bytes in a .png file.
    """
    if output_format:
        return FORMAT_MIME.get(output_format, "image/jpeg")
    return sent_mime if sent_mime in PIL_FORMAT else "image/jpeg"


def encode_output(data: bytes, output_format: str | None, sent_mime: str | None = None) -> tuple[bytes, str]:
    """Validate a provider's image and re-encode it to the type the booth gets back (output_mime).

    When the provider already answered in that type, upright, the bytes are kept: the
    structural check (JPEG markers, PNG chunk checksums and image data) proves a usable image
    without a decode. Otherwise the decode that converts it is the check of its image data (a
    PNG's is not inflated twice: that was a third of a 1 MP PNG → JPEG conversion).
    """
    target = output_mime(output_format, sent_mime)
    try:
        photo = photos.inspect(data, pixel_data=False)
        keep = photo.mime == target and photo.orientation == 1
        if keep and photo.mime == "image/png":  # kept without a decode: its image data checked here
            photo = photos.inspect(data)
    except (photos.NotAPhoto, photos.DamagedPhoto) as exc:
        raise InvalidImage(f"provider returned no usable image: {exc}") from None
    main, photo = photos.main_image(data, photo)
    if keep:
        return main, target
    out = io.BytesIO()
    try:
        with _decoding("output", photo.pixels):
            im = _decode_scaled(main, 1)
            try:
                im = _swap(im, _upright(im, photo.orientation))
                if target == "image/jpeg":
                    im = _swap(im, im.convert("RGB") if im.mode not in ("RGB", "L") else None)
                    im.save(out, "JPEG", quality=JPEG_QUALITY)
                else:
                    im = _swap(im, _colour(im))
                    im.save(out, PIL_FORMAT[target], **({"compress_level": 1} if target == "image/png" else {}))
            finally:
                im.close()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"provider returned no usable image ({exc.__class__.__name__})") from None
    return out.getvalue(), target


# ------------------------------------------------------------------------------ thumbnails

def _small_jpeg(data: bytes, size: int, save, purpose: str = "thumbnail") -> None:
    """A JPEG no larger than size × size, upright, aspect kept, given to `save(image)`.

    Decoded reduced (JPEG: DCT scaling; PNG: strip by strip) to the largest power-of-two fraction
    that still leaves twice the size to resample from; the pixel count is read from the header
    first and refused above the ingest's cap (photos.inspect), like every photo that comes in."""
    photo = photos.inspect(data, pixel_data=False)
    main, photo = photos.main_image(data, photo)
    factor = 1
    while max(photo.width, photo.height) // (factor * 2) >= 2 * size:
        factor *= 2
    with _decoding(purpose, photo.pixels // (factor * factor)):
        im = _decode_scaled(main, factor, photo)
        try:
            im = _swap(im, im.convert("RGB") if im.mode not in ("RGB", "L") else None)
            im = _swap(im, _upright(im, photo.orientation))
            im.thumbnail((size, size))
            save(im)
        finally:
            im.close()


def make_thumbnail(result_path, thumb_path, size: int = THUMBNAIL_PX) -> Path:
    """Write a JPEG no larger than size × size, upright, aspect kept, beside the result."""
    thumb_path = Path(thumb_path)

    def save(im) -> None:
        tmp = thumb_path.with_name(f".{thumb_path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            im.save(tmp, "JPEG", quality=80)
            os.replace(tmp, thumb_path)  # readers never see half a thumbnail
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    _small_jpeg(_read(result_path), size, save)
    return thumb_path


def preview_jpeg(data: bytes, size: int = 640) -> bytes:
    """A small JPEG of a photo an admin sent (the test shot's original beside its result), made the
    way a thumbnail is: caps first, a reduced decode. Run it with off_loop."""
    out = io.BytesIO()
    _small_jpeg(data, size, lambda im: im.save(out, "JPEG", quality=80), purpose="preview")
    return out.getvalue()


_thumbnails_in_flight: dict[str, asyncio.Future] = {}


async def thumbnail(result_path, thumb_path) -> Path:
    """The stored thumbnail of a result, made on first request. Single-flight per file: any
    number of concurrent requests share one decode, and a client hanging up cancels nothing."""
    thumb_path = Path(thumb_path)
    if thumb_path.exists():
        return thumb_path
    key = str(thumb_path)
    making = _thumbnails_in_flight.get(key)
    if making is None:
        making = asyncio.ensure_future(off_loop(make_thumbnail, result_path, thumb_path, lane="thumbnails"))
        _thumbnails_in_flight[key] = making
        making.add_done_callback(lambda _f: _thumbnails_in_flight.pop(key, None))
        making.add_done_callback(lambda f: f.cancelled() or f.exception())  # read by the waiters
    return await asyncio.shield(making)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
