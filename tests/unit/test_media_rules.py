"""Pure rules: image type from bytes, upright photos, output re-encoding, answer mapping, passwords."""
import io

import pytest
from PIL import Image

from photoslot import media, outcomes
from photoslot.passwords import hash_password, verify_password
from tests.conftest import FIXTURES


@pytest.mark.parametrize("name, mime", [("dslr_landscape.jpg", "image/jpeg"), ("small_photo.png", "image/png")])
def test_type_is_decided_from_the_bytes(name, mime):
    assert media.sniff_mime((FIXTURES / name).read_bytes()[:16]) == mime


def test_webp_and_garbage_are_recognised():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "WEBP")
    assert media.sniff_mime(buf.getvalue()[:16]) == "image/webp"
    assert media.sniff_mime(b"GIF89a..........") is None
    assert media.sniff_mime(b"") is None


def test_sideways_camera_photo_is_turned_upright_for_the_provider():
    path = FIXTURES / "dslr_portrait_orientation6.jpg"
    with Image.open(path) as im:
        w, h = im.size
    data, mime = media.prepare_for_provider(path, "image/jpeg")
    with Image.open(io.BytesIO(data)) as up:
        assert up.size == (h, w) and mime == "image/jpeg"
        assert up.getexif().get(0x0112, 1) == 1


def test_upright_photo_is_sent_as_is():
    path = FIXTURES / "dslr_landscape.jpg"
    data, _ = media.prepare_for_provider(path, "image/jpeg")
    assert data == path.read_bytes()


def test_provider_png_is_re_encoded_to_the_slots_jpeg():
    png = (FIXTURES / "small_photo.png").read_bytes()
    out, mime = media.encode_output(png, "jpeg")
    assert mime == "image/jpeg" and out[:3] == b"\xff\xd8\xff"
    same, mime2 = media.encode_output(png, "png")
    assert same == png and mime2 == "image/png"


def test_a_booth_gets_back_the_format_it_sent_unless_the_slot_names_one():
    png = (FIXTURES / "small_photo.png").read_bytes()
    assert media.encode_output(png, None, "image/png") == (png, "image/png")  # a PNG booth: PNG back
    out, mime = media.encode_output(png, None, "image/jpeg")  # a JPEG booth, a PNG-answering provider
    assert mime == "image/jpeg" and out[:3] == b"\xff\xd8\xff"
    out, mime = media.encode_output(png, "webp", "image/png")  # the slot's --output-format wins
    assert mime == "image/webp" and out[8:12] == b"WEBP"
    assert media.output_mime(None, None) == "image/jpeg"  # a job from before the type was recorded


def test_non_image_from_provider_is_an_invalid_result():
    with pytest.raises(media.InvalidImage):
        media.encode_output(b"this is not an image", "jpeg")


def test_check_image_refuses_a_decompression_bomb(tmp_path):
    # A tiny PNG header claiming 100000 x 100000 pixels.
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb + chunk(b"IEND", b""))
    with pytest.raises(media.InvalidImage, match="too large"):
        media.check_image(path, "image/png")


def test_check_image_refuses_bytes_that_only_start_like_a_jpeg(tmp_path):
    path = tmp_path / "fake.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"\x00" * 100)
    with pytest.raises(media.InvalidImage):
        media.check_image(path, "image/jpeg")


def test_media_store_refuses_paths_outside_its_root(tmp_path):
    store = media.MediaStore(tmp_path / "media")
    store.ensure()
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    with pytest.raises(ValueError):
        store.remove(store.uploads / ".." / ".." / "precious.txt")
    assert outside.exists()


@pytest.mark.parametrize("job, expected", [
    ({"failure_reason": "timeout"}, (504, "timeout")),
    ({"failure_reason": "provider_error", "answer_status": 502}, (502, "provider_error")),
    ({"failure_reason": "provider_error", "answer_status": 503}, (503, "provider_unavailable")),
    ({"failure_reason": "quota_exhausted"}, (503, "quota_exhausted")),
    ({"failure_reason": "invalid_result"}, (502, "invalid_result")),
    ({"failure_reason": "something_new"}, (500, "internal_error")),
])
def test_job_outcomes_map_to_the_documented_ingest_answers(job, expected):
    assert outcomes.ingest_answer(job) == expected


def test_password_hash_is_salted_and_verifies():
    a, b = hash_password("booth"), hash_password("booth")
    assert a["salt"] != b["salt"] and a["hash"] != b["hash"]
    assert verify_password("booth", a) and not verify_password("Booth", a)
    assert "booth" not in str(a)


def test_truncated_provider_jpeg_is_an_invalid_result():
    jpeg = (FIXTURES / "dslr_landscape.jpg").read_bytes()
    assert media.encode_output(jpeg, "jpeg") == (jpeg, "image/jpeg")
    with pytest.raises(media.InvalidImage, match="cut short"):
        media.encode_output(jpeg[: len(jpeg) // 2], "jpeg")
