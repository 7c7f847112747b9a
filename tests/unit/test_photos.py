"""Photos read as bytes (photoslot/photos.py): type, size, orientation, where the main image ends,
and every way the structure of a JPEG, PNG or WebP can be broken."""
from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib

import pytest
from PIL import Image

from photoslot import photos
from tests.conftest import FIXTURES

CAMERAS = FIXTURES / "cameras"
MANIFEST = json.loads((CAMERAS / "manifest.json").read_text(encoding="utf-8"))


def jpeg(size=(64, 48), **kw) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 140, 200)).save(buf, "JPEG", **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.parametrize("entry", MANIFEST["photos"], ids=lambda e: e["file"])
def test_every_corpus_photo_is_read_from_its_bytes(entry):
    data = (CAMERAS / entry["file"]).read_bytes()
    photo = photos.inspect(data)
    assert photo.mime == photos.sniff(data[:16])
    assert photo.orientation == entry["orientation"]
    assert list(photo.upright_size) == entry["upright_size"]


def test_mpf_file_is_cut_to_its_main_image_by_bytes():
    [entry] = [e for e in MANIFEST["photos"] if e["file"] == "mpf_preview.jpg"]
    data = (CAMERAS / "mpf_preview.jpg").read_bytes()
    photo = photos.inspect(data)
    assert photo.previews == 1 and photo.end < len(data)
    main, moved = photos.main_image(data, photo)
    # Exactly the camera's main JPEG: the MP index segment and the preview after it are gone.
    assert hashlib.sha256(main).hexdigest() == entry["main_sha256"]
    assert moved.end == len(main) and moved.cuts == () and main[moved.last_scan_end:] == b"\xff\xd9"


def test_a_photo_with_nothing_to_cut_is_returned_as_the_same_object():
    data = (CAMERAS / "exif_orientation1.jpg").read_bytes()
    photo = photos.inspect(data)
    assert photos.main_image(data, photo)[0] is data


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("value, expected", [(6, 6), (8, 8), (1, 1), (9, 1), (0, 1)])
def test_exif_orientation_is_read_in_both_byte_orders(endian, value, expected):
    magic = b"II*\x00" if endian == "<" else b"MM\x00*"
    ifd = struct.pack(endian + "H", 2) + struct.pack(endian + "HHIHH", 0x010F, 2, 1, 0, 0) \
        + struct.pack(endian + "HHIHH", 0x0112, 3, 1, value, 0) + b"\x00" * 4
    tiff = magic + struct.pack(endian + "I", 8) + ifd
    assert photos._exif_orientation(tiff) == expected


@pytest.mark.parametrize("junk", [b"", b"II*\x00\xff\xff\xff\xff", b"MM\x00*\x00\x00\x00\x08\x40\x00", b"nonsense"])
def test_unreadable_exif_means_upright_never_a_refusal(junk):
    assert photos._exif_orientation(junk) == 1


@pytest.mark.parametrize("kw", [{}, {"progressive": True}, {"subsampling": 0}, {"subsampling": 1},
                                {"restart_marker_rows": 1}, {"restart_marker_blocks": 1}, {"optimize": True}],
                         ids=lambda kw: ",".join(kw) or "baseline")
@pytest.mark.parametrize("size", [(1, 1), (7, 3), (17, 9), (64, 48), (333, 101)])
def test_valid_jpeg_codings_and_odd_sizes_pass_the_structure_check(kw, size):
    photo = photos.inspect(jpeg(size, **kw))
    assert (photo.width, photo.height) == size and photo.progressive == bool(kw.get("progressive"))


def test_jpeg_cut_anywhere_is_damaged_never_accepted():
    data = (CAMERAS / "restart_markers.jpg").read_bytes()
    sof = data.index(b"\xff\xc0")
    for cut in range(sof + 2, len(data) - 1, 997):
        with pytest.raises(photos.DamagedPhoto):
            photos.inspect(data[:cut])


def test_bytes_that_only_start_like_a_jpeg_are_not_a_photo():
    for data in (b"\xff\xd8\xff" + b"\x00" * 100, b"\xff\xd8\xff<html><script>x</script>" * 20,
                 b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x01" * 200):
        with pytest.raises(photos.NotAPhoto):
            photos.inspect(data)


def test_restart_markers_out_of_order_or_missing_are_damage():
    data = (CAMERAS / "restart_markers.jpg").read_bytes()
    rst2 = data.index(b"\xff\xd2")
    swapped = data[:rst2] + b"\xff\xd5" + data[rst2 + 2:]
    with pytest.raises(photos.DamagedPhoto, match="restart markers"):
        photos.inspect(swapped)
    last = data.rindex(b"\xff\xd7")
    with pytest.raises(photos.DamagedPhoto, match="restart markers"):
        photos.inspect(data[:last] + data[last + 2:])  # one marker dropped: one interval too few


def test_a_frame_header_larger_than_its_data_is_refused_without_decoding():
    data = bytearray(jpeg((120, 80), quality=90))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 6000, 8000)
    with pytest.raises(photos.DamagedPhoto, match="8000x6000"):
        photos.inspect(bytes(data))


def test_dimensions_over_the_limit_are_refused_from_the_header():
    data = bytearray(jpeg((32, 32)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 9000, 9000)
    with pytest.raises(photos.NotAPhoto, match="too large"):
        photos.inspect(bytes(data))


def test_fill_bytes_and_stuffing_are_read_as_libjpeg_reads_them():
    data = jpeg((64, 48))
    eoi = len(data) - 2
    padded = data[:eoi] + b"\xff" * 50_000 + data[eoi:]  # any number of fill bytes may precede a marker
    assert photos.inspect(padded).end == len(padded)


def test_unsupported_jpeg_codings_are_not_a_photo():
    data = bytearray(jpeg((16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 1] = 0xC9  # arithmetic coding
    with pytest.raises(photos.NotAPhoto, match="not supported"):
        photos.inspect(bytes(data))
    data[sof + 1] = 0xC0
    data[sof + 4] = 12  # 12-bit samples
    with pytest.raises(photos.NotAPhoto, match="12-bit"):
        photos.inspect(bytes(data))


def test_mpf_index_pointing_past_the_end_is_a_cut_short_file():
    data = (CAMERAS / "mpf_preview.jpg").read_bytes()
    assert photos.inspect(data).previews == 1
    with pytest.raises(photos.DamagedPhoto, match="MPF"):
        photos.inspect(data[:-100])


# ------------------------------------------------------------------------------------- PNG

def png(width=4, height=3, color=2, depth=8, rows=None, interlace=0) -> bytes:
    channels = photos.PNG_CHANNELS[color]
    if rows is None:
        rows = [b"\x00" + bytes(width * channels * depth // 8) for _ in range(height)]
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)
    extra = png_chunk(b"PLTE", bytes(3 * 4)) if color == 3 else b""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + png_chunk(b"IEND", b""))


def test_png_structure_and_image_data_are_checked_without_a_decoder():
    photo = photos.inspect(png())
    assert (photo.width, photo.height, photo.bit_depth, photo.color_type) == (4, 3, 8, 2)


@pytest.mark.parametrize("name", ["png_interlaced.png", "png_rgb16.png", "png_gray16.png", "png_palette.png",
                                  "png_alpha.png"])
def test_png_flavours_hold_exactly_the_rows_their_header_declares(name):
    photos.inspect((CAMERAS / name).read_bytes())  # raises when the row count or size is off


def test_png_header_declaring_more_rows_than_the_data_holds_is_damaged():
    rows = [b"\x00" + bytes(12) for _ in range(3)]
    with pytest.raises(photos.DamagedPhoto, match="declares more pixels"):
        photos.inspect(png(height=4, rows=rows))
    with pytest.raises(photos.DamagedPhoto, match="more image data"):
        photos.inspect(png(height=2, rows=rows))


def test_png_row_with_an_impossible_filter_type_is_damaged():
    rows = [b"\x00" + bytes(12), b"\x07" + bytes(12), b"\x00" + bytes(12)]
    with pytest.raises(photos.DamagedPhoto, match="filter"):
        photos.inspect(png(rows=rows))


def test_png_checksum_cut_and_missing_end_are_damaged():
    data = png()
    bad = bytearray(data)
    bad[data.index(b"IDAT") + 6] ^= 0xFF
    with pytest.raises(photos.DamagedPhoto, match="checksum"):
        photos.inspect(bytes(bad))
    with pytest.raises(photos.DamagedPhoto, match="cut short"):
        photos.inspect(data[:-12])  # no IEND
    with pytest.raises(photos.DamagedPhoto):
        photos.inspect(data[:data.index(b"IDAT") + 10])


def test_png_bomb_header_is_refused_before_its_data_is_looked_at():
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")
    with pytest.raises(photos.NotAPhoto, match="too large"):
        photos.inspect(data)


def test_png_interlaced_pass_sizes_follow_adam7():
    photo = photos.Photo("image/png", 5, 3, bit_depth=8, color_type=0, interlaced=True)
    # 5x3 grey: passes 1, 2 and 4 hold 1x1 pixels, 3 none (it starts below the image), 5 3x1, 6 2x2, 7 5x1
    assert photos._png_rows(photo) == [(1, 2), (1, 2), (1, 2), (1, 4), (2, 3), (1, 6)]


# ------------------------------------------------------------------------------------- WebP

def webp(**kw) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 90)).save(buf, "WEBP", **kw)
    return buf.getvalue()


@pytest.mark.parametrize("kw", [{"quality": 80}, {"lossless": True}, {"exif": b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"}],
                         ids=["lossy", "lossless", "extended"])
def test_webp_flavours_are_read_from_their_chunks(kw):
    photo = photos.inspect(webp(**kw))
    assert (photo.mime, photo.width, photo.height) == ("image/webp", 40, 30)


def test_webp_shorter_than_its_riff_size_is_cut_short():
    data = webp(quality=80)
    with pytest.raises(photos.DamagedPhoto, match="cut short"):
        photos.inspect(data[:-10])


def test_webp_canvas_that_disagrees_with_its_frame_is_damaged():
    data = bytearray(webp(exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"))
    at = data.index(b"VP8X") + 8
    data[at + 4:at + 10] = (999).to_bytes(3, "little") + (29).to_bytes(3, "little")
    with pytest.raises(photos.DamagedPhoto, match="1000x30"):
        photos.inspect(bytes(data))


def test_webp_over_its_own_ceiling_is_refused_from_the_header():
    data = bytearray(webp(exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"))
    at = data.index(b"VP8X") + 8
    data[at + 4:at + 10] = (5000 - 1).to_bytes(3, "little") + (5000 - 1).to_bytes(3, "little")
    with pytest.raises(photos.NotAPhoto, match="too large"):
        photos.inspect(bytes(data))


def test_what_is_not_a_jpeg_png_or_webp_is_not_a_photo():
    for data in (b"GIF89a" + bytes(100), b"%PDF-1.4", b"", b"RIFF\x00\x00\x00\x00WAVEfmt "):
        with pytest.raises(photos.NotAPhoto):
            photos.inspect(data)
