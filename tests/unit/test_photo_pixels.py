"""The pixel side of photos (photoslot/media.py): the ingest check's reduced decode, what a
provider gets, the slot's output, thumbnails — and how many decodes each costs."""
from __future__ import annotations

import hashlib
import io
import json
import random

import pytest
from PIL import Image, ImageStat

from photoslot import media, photos
from tests.conftest import FIXTURES

CAMERAS = FIXTURES / "cameras"
MANIFEST = json.loads((CAMERAS / "manifest.json").read_text(encoding="utf-8"))
PHOTOS = {e["file"]: e for e in MANIFEST["photos"]}


def read(name: str) -> bytes:
    return (CAMERAS / name).read_bytes()


def is_upright(im: Image.Image) -> bool:
    """The corpus's orientation mark: a white square near the top-left, a black one near the
    bottom-right, in the upright picture."""
    grey = im.convert("L")
    w, h = grey.size

    def mean(x0, y0, x1, y1):
        return ImageStat.Stat(grey.crop((int(x0 * w), int(y0 * h), int(x1 * w), int(y1 * h)))).mean[0]

    return mean(0.09, 0.09, 0.19, 0.19) > 200 and mean(0.81, 0.81, 0.91, 0.91) < 60


def decodes() -> dict:
    return dict(media.DECODES)


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_every_corpus_photo_passes_the_ingest_check(name):
    data = read(name)
    assert media.check_image(data, photos.sniff(data[:16])).mime == photos.sniff(data[:16])


@pytest.mark.parametrize("entry", MANIFEST["damaged"], ids=lambda e: e["file"])
def test_every_damaged_corpus_photo_is_refused_as_damaged(entry):
    data = (CAMERAS / entry["file"]).read_bytes()
    with pytest.raises(media.DamagedImage):
        media.check_image(data, photos.sniff(data[:16]))


@pytest.mark.parametrize("name", ["exif_orientation1.jpg", "restart_markers.jpg", "restart_markers_every_block.jpg",
                                  "subsampling_444.jpg"])
def test_overwritten_image_data_is_refused_where_the_decoder_loses_step(name):
    """Bytes overwritten inside the image data make libjpeg lose step (it only warns); 64 random
    bytes at 40 seeded places: at least 3 in 4 must be refused. Corruption that keeps the Huffman
    stream in step is a valid JPEG with other pixels; no decoder can tell, so 100 % is impossible."""
    data = read(name)
    scan = data.index(b"\xff\xda")
    rng = random.Random(name)
    refused = 0
    for _ in range(40):
        broken = bytearray(data)
        at = rng.randrange(scan + 200, len(data) - 300)
        broken[at:at + 64] = bytes(rng.randrange(256) for _ in range(64))
        try:
            media.check_image(bytes(broken), "image/jpeg")
        except media.InvalidImage:
            refused += 1
    assert refused >= 30


def test_a_few_stray_bytes_before_the_end_marker_are_tolerated_as_viewers_do():
    data = read("exif_orientation1.jpg")
    for stray in (b"\x00", b"\x00\x00\x00\x00"):
        media.check_image(data[:-2] + stray + data[-2:], "image/jpeg")


def test_cut_short_corrupt_and_lying_files_are_damaged_not_unsupported():
    data = read("exif_orientation1.jpg")
    with pytest.raises(media.DamagedImage):
        media.check_image(data[: len(data) // 2], "image/jpeg")
    with pytest.raises(media.UnsupportedImage):
        media.check_image(b"\xff\xd8\xff" + b"<html>" * 50, "image/jpeg")
    with pytest.raises(media.UnsupportedImage, match="not a valid image/png"):
        media.check_image(data, "image/png")


def test_upright_photo_within_the_limit_goes_to_the_provider_as_its_own_bytes_without_a_decode():
    for name in ("exif_orientation1.jpg", "maker_notes.jpg", "progressive.jpg", "png_rgb16.png", "webp_lossy.webp"):
        data = read(name)
        before = decodes()
        assert media.prepare_for_provider(data, photos.sniff(data[:16]), 24) == (data, photos.sniff(data[:16]))
        assert decodes() == before


def test_mpf_photo_goes_to_the_provider_as_its_main_image_cut_by_bytes():
    before = decodes()
    out, mime = media.prepare_for_provider(read("mpf_preview.jpg"), "image/jpeg", 24)
    assert mime == "image/jpeg" and hashlib.sha256(out).hexdigest() == PHOTOS["mpf_preview.jpg"]["main_sha256"]
    assert decodes() == before
    with Image.open(io.BytesIO(out)) as im:
        assert im.format == "JPEG" and getattr(im, "n_frames", 1) == 1


@pytest.mark.parametrize("name", [n for n, e in PHOTOS.items() if e["provider_gets"] == "re-encoded"])
def test_turned_or_converted_photos_reach_the_provider_upright_in_one_decode(name):
    data = read(name)
    before = decodes().get("provider", 0)
    out, mime = media.prepare_for_provider(data, photos.sniff(data[:16]), 24)
    assert media.DECODES["provider"] == before + 1
    with Image.open(io.BytesIO(out)) as im:
        assert list(im.size) == PHOTOS[name]["upright_size"] and im.mode in ("RGB", "L", "RGBA")
        assert im.getexif().get(0x0112) in (None, 1)
        assert is_upright(im)


def test_a_photo_over_the_providers_limit_is_sent_halved_until_it_fits():
    data = read("exif_orientation6.jpg")  # 427 x 640 upright, 0.27 MP
    out, _ = media.prepare_for_provider(data, "image/jpeg", 0.02)  # at most 20,000 pixels: 1/4 per side
    with Image.open(io.BytesIO(out)) as im:
        assert im.size == (107, 160) and is_upright(im)
    landscape = read("exif_orientation1.jpg")
    out, _ = media.prepare_for_provider(landscape, "image/jpeg", 0.1)  # 1/2 per side, no turn needed
    with Image.open(io.BytesIO(out)) as im:
        assert im.size == (320, 214) and is_upright(im)


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_every_corpus_flavour_over_the_limit_reaches_the_provider_reduced_and_upright(name):
    data = read(name)
    out, mime = media.prepare_for_provider(data, photos.sniff(data[:16]), 0.02)  # at most 20,000 pixels
    w, h = PHOTOS[name]["upright_size"]
    f = 4 if w * h > 80_000 else 2  # the corpus: 640x427 JPEGs and WebPs, 320x213 PNGs
    with Image.open(io.BytesIO(out)) as im:
        assert im.size == (-(-w // f), -(-h // f)) and im.mode in ("RGB", "L", "RGBA")
        assert mime == ("image/png" if im.mode == "RGBA" else "image/jpeg")
        assert is_upright(im)


@pytest.mark.parametrize("name", ["png_rgb8.png", "png_palette.png", "png_alpha.png", "png_exif_orientation6.png"])
def test_a_big_png_is_reduced_strip_by_strip_to_the_same_pixels_as_a_whole_decode(name, monkeypatch):
    monkeypatch.setattr(media, "PNG_STRIP_BYTES", 3000)  # many strips, so every seam is crossed
    data = read(name)
    photo = photos.inspect(data)
    strips = media._png_in_strips(data, photo, 2)
    with Image.open(io.BytesIO(data)) as whole:
        mode = "RGBA" if whole.mode == "RGBA" or "transparency" in whole.info else "RGB"
        expected = whole.convert(mode).reduce(2)
    assert strips.mode == mode and strips.tobytes() == expected.tobytes()


def test_provider_answer_in_the_slots_format_is_kept_and_others_re_encoded():
    png = read("png_rgb8.png")
    assert media.encode_output(png, "png") == (png, "image/png")
    out, mime = media.encode_output(png, "jpeg")
    assert mime == "image/jpeg" and photos.inspect(out).mime == "image/jpeg"
    sideways = read("exif_orientation6.jpg")
    out, _ = media.encode_output(sideways, "jpeg")  # a provider's JPEG with an orientation tag: turned
    with Image.open(io.BytesIO(out)) as im:
        assert list(im.size) == PHOTOS["exif_orientation6.jpg"]["upright_size"] and is_upright(im)


def test_damaged_provider_answers_are_an_invalid_result():
    for bad in (b"this is not an image", read("exif_orientation1.jpg")[:30000], read("damaged/png_bad_checksum.png")):
        with pytest.raises(media.InvalidImage, match="provider returned no usable image"):
            media.encode_output(bad, "jpeg")


def test_thumbnail_is_an_upright_jpeg_within_160_px(tmp_path):
    for name in ("exif_orientation1.jpg", "png_alpha.png", "webp_lossy.webp", "exif_orientation6.jpg"):
        thumb = media.make_thumbnail(CAMERAS / name, tmp_path / f"{name}.thumb.jpg")
        with Image.open(thumb) as im:
            assert im.format == "JPEG" and max(im.size) == 160
            upright = PHOTOS[name]["upright_size"]
            assert (im.width > im.height) == (upright[0] > upright[1]) and is_upright(im)
    assert not list(tmp_path.glob(".*.tmp"))  # written whole, then renamed into place


def test_thumbnail_lives_beside_its_result_and_goes_with_it(tmp_path):
    store = media.MediaStore(tmp_path / "media")
    store.ensure()
    result = store.result_path("1b4e28ba-2fa1-11d2-883f-0016d3cca427", "image/jpeg")
    result.write_bytes(read("exif_orientation1.jpg"))
    thumb = store.thumbnail_path(result)
    assert thumb == store.results / "1b4e28ba-2fa1-11d2-883f-0016d3cca427.thumb.jpg"
    media.make_thumbnail(result, thumb)
    assert store.remove_result(result) and not result.exists() and not thumb.exists()
    assert not store.remove_result(result)  # already gone: no error
