"""Photo files read as bytes, without decoding pixels: which type, how big, which way up, where
the main image ends, and whether the structure holds together.

Every rule here is decided from the bytes, never from a library's name for the format: a camera
JPEG with an MPF preview (Pillow calls it "MPO"), EXIF, XMP, ICC, maker notes, Adobe APP14,
restart markers, any subsampling, baseline or progressive, is a JPEG.

Two kinds of refusal:

* `NotAPhoto` — not a JPEG, PNG or WebP at all (the bytes never form a frame header), a coding no
  provider takes, or more than `MAX_PIXELS` (ingest answers 415);
* `DamagedPhoto` — a JPEG, PNG or WebP whose bytes do not hold together: cut short, corrupt
  image data, or a header that declares more pixels than the data can hold (ingest answers 422).

Pure functions over `bytes`: no files, no Pillow; the pixel checks that need a decoder are in
media.py.
"""
from __future__ import annotations

import array
import dataclasses
import re
import struct
import zlib
from dataclasses import dataclass

MAX_PIXELS = 80_000_000  # a 60 MP camera fits; a decompression bomb does not
# Pillow's WebP decoder holds about 15 bytes per pixel (libwebp's canvases plus two copies) and has
# no reduced decode; no camera writes WebP, so its ceiling is a phone's photo with room to spare.
MAX_WEBP_PIXELS = 4096 * 4096


class NotAPhoto(ValueError):
    """Bytes that are not a JPEG, PNG or WebP this product can take."""


class DamagedPhoto(ValueError):
    """A JPEG, PNG or WebP whose bytes are broken: cut short, corrupt, or lying about its size."""


@dataclass(frozen=True)
class Intervals:
    """The restart intervals of a single-scan JPEG, for checking each on its own (media.py): the
    segments a decoder needs to read one, and where each starts and ends in the scan."""
    restart: int                  # MCUs per interval (the last may hold fewer)
    units: int                    # MCUs in the scan
    mcu_size: tuple[int, int]     # pixels one MCU covers
    tables: bytes                 # every DQT and DHT segment before the scan
    frame: bytes                  # the SOF segment
    scan_header: bytes            # the SOS segment
    marks: array.array            # per restart marker: (end of the interval before it, start of the next),
    #                               relative to the scan's start

    def spans(self, scan_start: int, scan_end: int):
        """(start, end, MCUs) of every interval, absolute."""
        count = len(self.marks) // 2 + 1
        for i in range(count):
            start = scan_start + (self.marks[2 * i - 1] if i else 0)
            end = scan_start + self.marks[2 * i] if i < count - 1 else scan_end
            yield start, end, self.restart if i < count - 1 else self.units - self.restart * (count - 1)


@dataclass(frozen=True)
class Photo:
    mime: str
    width: int
    height: int
    orientation: int = 1          # EXIF orientation 1…8 (1 = stored upright)
    end: int = 0                  # the main image is data[:end]; what follows (MPF previews, a trailer) is not
    cuts: tuple[tuple[int, int], ...] = ()  # byte ranges inside the main image dropped when sending it on
    # JPEG
    components: int = 0           # 1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK
    progressive: bool = False
    scans: int = 0
    last_scan_start: int = 0      # where the last scan's entropy-coded data starts …
    last_scan_end: int = 0        # … and ends (before the marker that follows it)
    previews: int = 0             # further images listed in the MPF index
    intervals: Intervals | None = None  # a single-scan JPEG with restart markers
    # PNG
    bit_depth: int = 0
    color_type: int = -1
    interlaced: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) once the EXIF orientation is applied."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)


def sniff(head: bytes) -> str | None:
    """The MIME type the first bytes announce (JPEG, PNG, WebP), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def inspect(data: bytes, *, pixel_data: bool = True) -> Photo:
    """Parse and check the structure of a photo.

    `pixel_data=True` also checks what can be checked without a decoder: a PNG's compressed
    image data is inflated (streamed, nothing kept) and must hold exactly the rows the header
    declares. Raises NotAPhoto or DamagedPhoto.
    """
    mime = sniff(data[:16])
    if mime == "image/jpeg":
        photo = _jpeg(data)
    elif mime == "image/png":
        photo = _png(data, pixel_data)
    elif mime == "image/webp":
        photo = _webp(data)
    else:
        raise NotAPhoto("the file is not a JPEG, PNG or WebP image")
    _sane_size(photo.width, photo.height)
    return photo


def _sane_size(width: int, height: int, limit: int = MAX_PIXELS) -> None:
    """Checked as soon as a header is read: a bomb is refused before anything else is looked at."""
    if width < 1 or height < 1:
        raise NotAPhoto("image has no pixels")
    if width * height > limit:
        raise NotAPhoto(f"image dimensions {width}x{height} are too large (at most {limit / 1e6:.1f} MP)")


def main_image(data: bytes, photo: Photo) -> tuple[bytes, Photo]:
    """The bytes a provider should get: the main image alone (MPF previews, trailers and the MPF
    index that points at them dropped), and its Photo with offsets moved accordingly. The
    original object is returned untouched when there is nothing to drop."""
    if not photo.cuts and photo.end == len(data):
        return data, photo
    parts, pos, removed = [], 0, 0
    for start, stop in photo.cuts:
        parts.append(data[pos:start])
        removed += stop - start
        pos = stop
    parts.append(data[pos:photo.end])
    out = b"".join(parts)
    # Every cut lies in the header, before the image data.
    moved = dataclasses.replace(photo, end=len(out), cuts=(), previews=0,
                                last_scan_start=max(0, photo.last_scan_start - removed),
                                last_scan_end=max(0, photo.last_scan_end - removed))
    return out, moved


# ---------------------------------------------------------------------------------------- JPEG

SOF_SUPPORTED = {0xC0: False, 0xC1: False, 0xC2: True}  # marker -> progressive
SOF_OTHER = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # lossless, hierarchical, arithmetic
SOS, EOI, DHT, DQT, DRI, DNL, APP1, APP2, APP14 = 0xDA, 0xD9, 0xC4, 0xDB, 0xDD, 0xDC, 0xE1, 0xE2, 0xEE
# Markers that carry a length-prefixed segment besides SOFn/SOS: APPn, COM, DQT, DHT, DRI, DNL, DAC, EXP, JPGn.
SEGMENTS = set(range(0xE0, 0xF0)) | {0xFE, DQT, DHT, DRI, DNL, 0xCC, 0xDF} | set(range(0xF0, 0xFE))
# In entropy-coded data an FF is either stuffed (FF00) or opens a marker, possibly after FF fill
# bytes. Runs are matched separately so that a hostile run of FFs costs linear time.
_FF_NOT_STUFFED = re.compile(rb"\xff[^\x00]")
_FF_RUN = re.compile(rb"\xff+")
MAX_SEGMENTS = 4096  # real files have a few dozen; a hostile one must not buy seconds of parsing


@dataclass
class _Frame:
    width: int
    height: int
    progressive: bool
    comps: dict[int, tuple[int, int]]  # component id -> (h, v) sampling factors

    @property
    def hmax(self) -> int:
        return max(h for h, _ in self.comps.values())

    @property
    def vmax(self) -> int:
        return max(v for _, v in self.comps.values())

    def mcus(self) -> int:
        return _ceil(self.width, 8 * self.hmax) * _ceil(self.height, 8 * self.vmax)

    def blocks(self, cid: int) -> int:
        """Blocks of one component in a non-interleaved scan (not padded to whole MCUs)."""
        h, v = self.comps[cid]
        return _ceil(_ceil(self.width * h, self.hmax), 8) * _ceil(_ceil(self.height * v, self.vmax), 8)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _jpeg(data: bytes) -> Photo:
    n = len(data)
    pos = 2
    frame: _Frame | None = None
    dc_cost: dict[int, int] = {}  # Huffman table id -> fewest bits one DC difference can take
    ac_cost: dict[int, int] = {}  # … one AC symbol (EOB included) can take
    restart = 0
    orientation = 1
    exif_seen = False
    cuts: list[tuple[int, int]] = []
    mpf: tuple[int, bytes] | None = None  # (offset of the MP header, segment body)
    scans = 0
    last_scan_start = last_scan_end = 0
    tables: list[bytes] = []  # DQT and DHT segments, for checking restart intervals one by one
    frame_segment = scan_segment = b""
    intervals: tuple | None = None  # (units, marks) of the last scan

    def broken(message: str) -> Exception:
        # Before a frame header the bytes were never a JPEG; after it they are a damaged one.
        return DamagedPhoto(message) if frame is not None else NotAPhoto(f"the file is not a readable JPEG ({message})")

    segments = 0
    while True:
        if pos >= n:
            raise DamagedPhoto("the JPEG is cut short (it ends before its end-of-image marker)")
        if data[pos] != 0xFF:
            raise broken(f"unexpected bytes between segments at offset {pos}")
        segments += 1
        if segments > MAX_SEGMENTS:
            raise broken("too many segments")
        pos = _FF_RUN.match(data, pos).end()  # fill bytes may precede any marker
        if pos >= n:
            raise DamagedPhoto("the JPEG is cut short (it ends inside a marker)")
        marker = data[pos]
        pos += 1
        if marker == EOI:
            if scans == 0:
                raise broken("the JPEG ends before any image data")
            end = pos
            break
        if marker == SOS and frame is None:
            raise broken("image data before the frame header")
        if marker not in SEGMENTS and marker != SOS and marker not in SOF_SUPPORTED and marker not in SOF_OTHER:
            raise broken(f"invalid marker 0x{marker:02X} at offset {pos - 1}")
        if pos + 2 > n:
            raise DamagedPhoto("the JPEG is cut short (it ends inside a segment header)")
        length = _u16(data, pos)
        if length < 2:
            raise broken(f"a segment with an impossible length at offset {pos}")
        if pos + length > n:
            raise DamagedPhoto("the JPEG is cut short (it ends inside a segment)")
        body = data[pos + 2:pos + length]
        segment = (pos - 2, pos + length)  # from its FF to its last byte
        pos += length

        if marker in SOF_OTHER:
            raise broken("this JPEG coding (lossless, hierarchical or arithmetic) is not supported")
        if marker in SOF_SUPPORTED:
            if frame is not None:
                raise DamagedPhoto("a second frame header inside the image")
            frame = _frame(body, SOF_SUPPORTED[marker])
            _sane_size(frame.width, frame.height)
            frame_segment = data[segment[0]:segment[1]]
        elif marker == DHT:
            _huffman_tables(body, dc_cost, ac_cost, broken)
            tables.append(data[segment[0]:segment[1]])
        elif marker == DQT:
            tables.append(data[segment[0]:segment[1]])
        elif marker == DRI:
            if len(body) < 2:
                raise broken("a restart-interval segment too short")
            restart = _u16(body, 0)
        elif marker == APP1 and body.startswith(b"Exif\x00\x00") and not exif_seen:
            exif_seen = True
            orientation = _exif_orientation(body[6:])
        elif marker == APP2 and body.startswith(b"MPF\x00") and mpf is None and frame is None:
            mpf = (segment[0] + 4 + 4, body[4:])
            cuts.append(segment)
        elif marker == SOS:
            last_scan_start = pos
            pos, units, marks = _scan(data, pos, body, frame, dc_cost, ac_cost, restart)
            scans += 1
            last_scan_end = pos
            scan_segment = data[segment[0]:segment[1]]
            intervals = (units, marks) if restart and len(body) and body[0] == len(frame.comps) else None

    previews = _mpf_previews(data, end, *mpf) if mpf is not None else 0
    assert frame is not None
    layout = None
    if scans == 1 and intervals is not None:
        mcu = (8 * frame.hmax, 8 * frame.vmax) if len(frame.comps) > 1 else (8, 8)
        layout = Intervals(restart, intervals[0], mcu, b"".join(tables), frame_segment, scan_segment, intervals[1])
    return Photo("image/jpeg", frame.width, frame.height, orientation=orientation, end=end, cuts=tuple(cuts),
                 components=len(frame.comps), progressive=frame.progressive, scans=scans,
                 last_scan_start=last_scan_start, last_scan_end=last_scan_end, previews=previews, intervals=layout)


def _u16(data: bytes, pos: int) -> int:
    return (data[pos] << 8) | data[pos + 1]


def _frame(body: bytes, progressive: bool) -> _Frame:
    if len(body) < 6:
        raise NotAPhoto("the file is not a readable JPEG (frame header too short)")
    precision, height, width, count = body[0], _u16(body, 1), _u16(body, 3), body[5]
    if precision != 8:
        raise NotAPhoto(f"{precision}-bit JPEG samples are not supported")
    if count not in (1, 3, 4) or len(body) < 6 + 3 * count:
        raise NotAPhoto(f"the file is not a readable JPEG ({count} colour components)")
    if height == 0 or width == 0:
        raise NotAPhoto("image has no pixels (or declares its height later, which is not supported)")
    comps = {}
    for i in range(count):
        cid, hv = body[6 + 3 * i], body[7 + 3 * i]
        h, v = hv >> 4, hv & 0x0F
        if not (1 <= h <= 4 and 1 <= v <= 4) or cid in comps:
            raise NotAPhoto("the file is not a readable JPEG (bad component sampling)")
        comps[cid] = (h, v)
    return _Frame(width, height, progressive, comps)


def _huffman_tables(body: bytes, dc_cost: dict, ac_cost: dict, broken) -> None:
    pos = 0
    while pos < len(body):
        if pos + 17 > len(body):
            raise broken("a Huffman table segment too short")
        tc, th = body[pos] >> 4, body[pos] & 0x0F
        counts = body[pos + 1:pos + 17]
        total = sum(counts)
        symbols = body[pos + 17:pos + 17 + total]
        if tc > 1 or th > 3 or total == 0 or len(symbols) < total:
            raise broken("an invalid Huffman table")
        # The fewest bits one coded value can take: its code length plus the extra bits its
        # symbol asks for (a DC symbol is a bit count; an AC symbol's low nibble is).
        cheapest, i = 1 << 30, 0
        for length, count in enumerate(counts, start=1):
            for s in symbols[i:i + count]:
                cheapest = min(cheapest, length + (s if tc == 0 else s & 0x0F))
            i += count
        (ac_cost if tc else dc_cost)[th] = cheapest
        pos += 17 + total


def _scan(data: bytes, pos: int, header: bytes, frame: _Frame, dc_cost: dict, ac_cost: dict,
          restart: int) -> tuple[int, int, array.array]:
    """Check one scan's header and walk its entropy-coded data; return where it ends, its MCU (or
    block) count and its restart marks (see Intervals)."""
    if not header or len(header) < 1 + 2 * header[0] + 3:
        raise DamagedPhoto("a scan header too short")
    count = header[0]
    selectors = [(header[1 + 2 * i], header[2 + 2 * i] >> 4, header[2 + 2 * i] & 0x0F) for i in range(count)]
    ss, se, ah = header[1 + 2 * count], header[2 + 2 * count], header[3 + 2 * count] >> 4
    if not 1 <= count <= 4 or any(cid not in frame.comps for cid, _, _ in selectors):
        raise DamagedPhoto("a scan names a colour component the frame does not have")
    if frame.progressive and (ss > se or se > 63 or (ss == 0 and se != 0) or (ss > 0 and count != 1)):
        raise DamagedPhoto("a progressive scan with impossible parameters")

    # The fewest bits this scan's data can take: a lower bound from its block count and the
    # cheapest codes of its Huffman tables. A header declaring 8000×6000 over a small image's
    # data fails here, without decoding anything.
    if count == 1:
        units = frame.blocks(selectors[0][0])
        per_unit = {cid: 1 for cid, _, _ in selectors}
    else:
        units = frame.mcus()
        per_unit = {cid: frame.comps[cid][0] * frame.comps[cid][1] for cid, _, _ in selectors}
    need = 0
    for cid, td, ta in selectors:
        dc_first = ss == 0 and ah == 0
        if not frame.progressive or dc_first:
            if td not in dc_cost:
                raise DamagedPhoto("a scan uses a Huffman table that was never defined")
            bits = dc_cost[td]
        elif ss == 0:
            bits = 1  # a DC refinement scan holds exactly one bit per block
        else:
            bits = 0  # AC scans may cover thousands of empty blocks with one end-of-band run
        if not frame.progressive:
            if ta not in ac_cost:
                raise DamagedPhoto("a scan uses a Huffman table that was never defined")
            bits += ac_cost[ta]
        elif ss > 0 and ta not in ac_cost:
            raise DamagedPhoto("a scan uses a Huffman table that was never defined")
        need += bits * per_unit[cid]
    need *= units

    expected = _ceil(units, restart) - 1 if restart else 0
    start, restarts = pos, 0
    marks = array.array("I")
    while True:
        m = _FF_NOT_STUFFED.search(data, pos)
        if m is None:
            raise DamagedPhoto("the JPEG is cut short (its image data runs to the end of the file)")
        after = _FF_RUN.match(data, m.start()).end()
        if after >= len(data):
            raise DamagedPhoto("the JPEG is cut short (its image data runs to the end of the file)")
        marker = data[after]
        if marker == 0x00:  # fill bytes before a stuffed FF: libjpeg reads it as data
            pos = after + 1
            continue
        if 0xD0 <= marker <= 0xD7:
            if marker - 0xD0 != restarts % 8 or restarts >= expected:
                raise DamagedPhoto("restart markers out of order or too many (image data lost or corrupt)")
            restarts += 1
            pos = after + 1
            marks.extend((m.start() - start, pos - start))
            continue
        end = m.start()
        break
    if restarts != expected:
        raise DamagedPhoto(f"{restarts} restart markers where the header implies {expected} "
                           "(image data lost or corrupt)")
    # Data bits: stuffed zero bytes and restart markers carry none.
    have = (end - start - data.count(b"\xff\x00", start, end) - 2 * restarts) * 8
    if have < need:
        raise DamagedPhoto(f"the header declares {frame.width}x{frame.height} pixels but the file holds "
                           "far less image data (cut short or lying header)")
    return end, units, marks


def _exif_orientation(tiff: bytes) -> int:
    """EXIF Orientation (tag 0x0112 in IFD0) from a TIFF block; 1 when absent or unreadable —
    a damaged maker note or EXIF block is no reason to refuse a photo."""
    try:
        endian = {b"II*\x00": "<", b"MM\x00*": ">"}[bytes(tiff[:4])]
        ifd = struct.unpack_from(endian + "I", tiff, 4)[0]
        (entries,) = struct.unpack_from(endian + "H", tiff, ifd)
        for i in range(min(entries, 512)):
            tag, kind, _count = struct.unpack_from(endian + "HHI", tiff, ifd + 2 + 12 * i)
            if tag == 0x0112 and kind == 3:
                value = struct.unpack_from(endian + "H", tiff, ifd + 2 + 12 * i + 8)[0]
                return value if 1 <= value <= 8 else 1
    except (KeyError, struct.error):
        pass
    return 1


def _mpf_previews(data: bytes, main_end: int, base: int, mp: bytes) -> int:
    """Check the MPF index of the main image: every further image it lists must lie inside the
    file and start like a JPEG. Returns how many there are. An index cameras write but we
    cannot read is ignored (the main image is whole and that is what is sent on)."""
    try:
        endian = {b"II*\x00": "<", b"MM\x00*": ">"}[bytes(mp[:4])]
        ifd = struct.unpack_from(endian + "I", mp, 4)[0]
        (entries,) = struct.unpack_from(endian + "H", mp, ifd)
        table = None
        for i in range(min(entries, 64)):
            tag, kind, count, value = struct.unpack_from(endian + "HHII", mp, ifd + 2 + 12 * i)
            if tag == 0xB002 and count % 16 == 0:
                table = (value, count // 16)
        if table is None:
            return 0
        offset, images = table
        listed = [struct.unpack_from(endian + "IIIHH", mp, offset + 16 * i) for i in range(min(images, 64))]
    except (KeyError, struct.error):
        return 0
    previews = 0
    for _attr, size, rel, _d1, _d2 in listed:
        if rel == 0:  # the main image itself
            continue
        start = base + rel
        if start < main_end or start + size > len(data):
            raise DamagedPhoto("the JPEG is cut short (its MPF index lists an image past the end of the file)")
        if data[start:start + 2] != b"\xff\xd8":
            raise DamagedPhoto("the MPF index points at something that is not an image")
        previews += 1
    return previews


# ---------------------------------------------------------------------------------------- PNG

PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
INFLATE_CHUNK = 1 << 20  # decompressed bytes looked at per step: memory stays flat whatever the size
MAX_CHUNKS = 1 << 18  # a 20 MB PNG in 8 KB IDAT chunks has 2,500


def _png(data: bytes, pixel_data: bool) -> Photo:
    header, chunks, end = _png_walk(data)
    width, height, depth, color, _, _, interlace = header
    kinds = [kind for kind, _ in chunks]
    if b"IDAT" not in kinds:
        raise DamagedPhoto("the PNG holds no image data")
    if color == 3 and b"PLTE" not in kinds:
        raise DamagedPhoto("a palette PNG without its palette")
    exif = [body for kind, body in chunks if kind == b"eXIf"]
    orientation = _exif_orientation(bytes(exif[0])) if exif else 1
    photo = Photo("image/png", width, height, orientation=orientation, end=end, bit_depth=depth, color_type=color,
                  interlaced=bool(interlace))
    if pixel_data:
        _png_rows_check([body for kind, body in chunks if kind == b"IDAT"], _png_rows(photo))
    return photo


def _png_walk(data: bytes) -> tuple[tuple, list[tuple[bytes, memoryview]], int]:
    """(IHDR fields, [(chunk type, body)] after IHDR, end of IEND). Every chunk's CRC is checked."""
    n = len(data)
    pos = 8
    header = None
    chunks: list[tuple[bytes, memoryview]] = []
    view = memoryview(data)
    while True:
        if len(chunks) > MAX_CHUNKS:
            raise _png_broken(header, "too many chunks")
        if pos + 8 > n:
            raise _png_broken(header, "the PNG is cut short (it ends before its IEND chunk)")
        length, kind = struct.unpack_from(">I4s", data, pos)
        if length > 0x7FFFFFFF or not kind.isalpha():
            raise _png_broken(header, f"an invalid chunk at offset {pos}")
        if pos + 12 + length > n:
            raise _png_broken(header, "the PNG is cut short (it ends inside a chunk)")
        body = view[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(body, zlib.crc32(kind)) != crc:
            raise _png_broken(header, f"the {kind.decode('ascii')} chunk is corrupt (checksum mismatch)")
        pos += 12 + length
        if header is None:
            if kind != b"IHDR" or length != 13:
                raise NotAPhoto("the file is not a readable PNG (no header chunk)")
            header = struct.unpack(">IIBBBBB", body)
            width, height, depth, color, compression, filtering, interlace = header
            if depth not in PNG_DEPTHS.get(color, ()) or compression or filtering or interlace > 1:
                raise NotAPhoto("the file is not a readable PNG (invalid header)")
            _sane_size(width, height)
            continue
        if kind == b"IEND":
            return header, chunks, pos
        chunks.append((kind, body))


def png_parts(data: bytes) -> tuple[tuple, list[memoryview]]:
    """(IHDR fields, the IDAT bodies): what it takes to decode the image strip by strip (media.py)."""
    header, chunks, _ = _png_walk(data)
    return header, [body for kind, body in chunks if kind == b"IDAT"]


def png_row_bytes(photo: Photo) -> int:
    """Bytes of one row of a non-interlaced PNG, its filter byte included."""
    return 1 + _ceil(photo.width * PNG_CHANNELS[photo.color_type] * photo.bit_depth, 8)


def inflate(parts: list[memoryview], step: int = 0):
    """The decompressed bytes of a PNG's IDAT stream, `step` bytes at a time at most (nothing is
    held beyond one step). Raises DamagedPhoto for a corrupt or unfinished stream."""
    inflater = zlib.decompressobj()
    step = step or INFLATE_CHUNK
    try:
        for part in parts:
            pending = part
            while len(pending) and not inflater.eof:
                out = inflater.decompress(pending, step)
                pending = inflater.unconsumed_tail
                if out:
                    yield out
        while not inflater.eof:
            out = inflater.decompress(b"", step)
            if not out:
                break
            yield out
    except zlib.error:
        raise DamagedPhoto("the PNG's image data is corrupt") from None
    if not inflater.eof:
        raise DamagedPhoto("the PNG's image data is cut short")


def _png_broken(header, message: str) -> Exception:
    return DamagedPhoto(message) if header is not None else NotAPhoto(f"the file is not a readable PNG ({message})")


def _png_rows(photo: Photo) -> list[tuple[int, int]]:
    """(rows, bytes per row including its filter byte) of each pass, in stream order."""
    bits = PNG_CHANNELS[photo.color_type] * photo.bit_depth
    passes = ADAM7 if photo.interlaced else ((0, 0, 1, 1),)
    out = []
    for x0, y0, dx, dy in passes:
        w = _ceil(photo.width - x0, dx) if photo.width > x0 else 0
        h = _ceil(photo.height - y0, dy) if photo.height > y0 else 0
        if w and h:
            out.append((h, 1 + _ceil(w * bits, 8)))
    return out


def _png_rows_check(idat: list[memoryview], passes: list[tuple[int, int]]) -> None:
    """Inflate the image data, keeping nothing: it must be a whole zlib stream (its checksum
    checked by zlib) holding exactly the rows the header declares, each opened by a valid
    filter type. A 77 KB file claiming 8900×8900 pixels costs time here, never memory."""
    queue = list(passes)
    rows_left, stride = queue.pop(0)
    at = 0  # position within the current row
    for buf in inflate(idat):
        i = 0
        while i < len(buf):
            if rows_left == 0:
                if not queue:
                    raise DamagedPhoto("the PNG holds more image data than its header declares")
                rows_left, stride = queue.pop(0)
            span = min(len(buf) - i, rows_left * stride - at)
            first = (stride - at) % stride  # where the next row (its filter byte) starts
            if first < span and max(buf[i + first:i + span:stride]) > 4:
                raise DamagedPhoto("the PNG's image data is corrupt (invalid row filter)")
            rows, at = divmod(at + span, stride)
            rows_left -= rows
            i += span
    if rows_left or at or queue:
        raise DamagedPhoto("the PNG's header declares more pixels than its image data holds")


# ---------------------------------------------------------------------------------------- WebP

def _webp(data: bytes) -> Photo:
    n = len(data)
    (riff_size,) = struct.unpack_from("<I", data, 4)
    end = 8 + riff_size
    if end > n:
        raise DamagedPhoto("the WebP is cut short (shorter than its RIFF header says)")
    pos = 12
    canvas = None
    frame = None
    orientation = 1
    animated = False
    chunks = 0
    while pos + 8 <= end:
        chunks += 1
        if chunks > MAX_CHUNKS:
            raise DamagedPhoto("the WebP has too many chunks")
        kind, size = struct.unpack_from("<4sI", data, pos)
        body = data[pos + 8:pos + 8 + size]
        if pos + 8 + size > end:
            raise DamagedPhoto(f"the WebP is cut short (its {kind.decode('latin-1')!r} chunk runs past the end)")
        if pos == 12 and kind not in (b"VP8 ", b"VP8L", b"VP8X"):
            raise NotAPhoto("the file is not a readable WebP (no image chunk)")
        if kind == b"VP8X":
            if size < 10:
                raise NotAPhoto("the file is not a readable WebP (extended header too short)")
            animated = bool(body[0] & 0x02)
            canvas = (1 + int.from_bytes(body[4:7], "little"), 1 + int.from_bytes(body[7:10], "little"))
            _sane_size(*canvas, limit=MAX_WEBP_PIXELS)
        elif kind in (b"VP8 ", b"VP8L") and frame is None:
            frame = _vp8_size(body) if kind == b"VP8 " else _vp8l_size(body)
            _sane_size(*frame, limit=MAX_WEBP_PIXELS)
        elif kind == b"EXIF":
            tiff = body[6:] if body.startswith(b"Exif\x00\x00") else body
            orientation = _exif_orientation(tiff)
        pos += 8 + size + (size & 1)
    if canvas is None and frame is None:
        raise NotAPhoto("the file is not a readable WebP (no image chunk)")
    if frame is None and not animated:
        raise DamagedPhoto("the WebP holds no image data")
    if canvas is not None and frame is not None and not animated and canvas != frame:
        raise DamagedPhoto(f"the WebP's header declares {canvas[0]}x{canvas[1]} pixels but its image is "
                           f"{frame[0]}x{frame[1]}")
    width, height = canvas or frame
    return Photo("image/webp", width, height, orientation=orientation, end=end)


def _vp8_size(body: bytes) -> tuple[int, int]:
    if len(body) < 10 or body[3:6] != b"\x9d\x01\x2a":
        raise DamagedPhoto("the WebP's lossy image data is corrupt (no key frame)")
    tag = body[0] | (body[1] << 8) | (body[2] << 16)
    if tag & 1 or (tag >> 5) > len(body) - 10:
        raise DamagedPhoto("the WebP's lossy image data is corrupt or cut short")
    return _u16le(body, 6) & 0x3FFF, _u16le(body, 8) & 0x3FFF


def _vp8l_size(body: bytes) -> tuple[int, int]:
    if len(body) < 5 or body[0] != 0x2F:
        raise DamagedPhoto("the WebP's lossless image data is corrupt")
    bits = int.from_bytes(body[1:5], "little")
    if bits >> 29:
        raise DamagedPhoto("the WebP's lossless image data is corrupt (unknown version)")
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1


def _u16le(data: bytes, pos: int) -> int:
    return data[pos] | (data[pos + 1] << 8)
