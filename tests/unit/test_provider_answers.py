"""How the clients read the providers' answers, on the documented shapes themselves (no I/O): where
Turbotext's final answer puts the result, what its Russian texts mean, what Google's 429 asks."""
from __future__ import annotations

import pytest
from google.genai import errors as genai_errors

from photoslot.config import load_config
from photoslot.providers.gemini import error_message, retry_delay
from photoslot.providers.turbotext import TurbotextClient, classify, quota_left


@pytest.fixture
def client():
    cfg = load_config(None, environ={})
    cfg.set("providers.turbotext.base_url", "https://www.turbotext.ru/")
    return TurbotextClient(cfg)


def test_the_result_is_read_from_top_level_then_data_then_the_relative_image_path(client):
    # mix_images / deepfake_photo: top-level uploaded_image beside data
    mix = {"success": True, "error": "", "data": {"prompt": "В стиле дисней", "width": 768, "height": 576},
           "uploaded_image": "https://www.turbotext.ru/download.php?f=abc.png"}
    assert client.result_location(mix) == "https://www.turbotext.ru/download.php?f=abc.png"
    # generate_image2image: only data.image, a path relative to the host
    i2i = {"success": True, "error": "", "data": {"user_id": 12, "image": ["image/generate_image2image_id12_0.png"]}}
    assert client.result_location(i2i) == "https://www.turbotext.ru/image/generate_image2image_id12_0.png"
    # deepfake_photo's sample as printed: uploaded_image holds a Russian placeholder, data.image the link
    deepfake = {"success": True, "data": {"image": ["https://cdn.turbotext.ru/r.png"], "forbidden_content": False},
                "uploaded_image": "Ссылка на фото с результатом генерации"}
    assert client.result_location(deepfake) == "https://cdn.turbotext.ru/r.png"
    assert client.result_location({"success": True, "data": {"uploaded_image": "/x/y.png"}}) == \
        "https://www.turbotext.ru/x/y.png"
    assert client.result_location({"success": True, "data": {"image": []}}) is None


@pytest.mark.parametrize("text, kind", [
    ("Изображение не прошло модерацию: обнаружен запрещённый контент", "moderation"),
    ("Недостаточно фото-попыток на вашем тарифе. Пополните баланс", "tariff"),
    ("Лимит генераций исчерпан", "tariff"),
    ("Неверный API ключ", "key"),
    ("Ошибка авторизации", "key"),
    ("Не удалось загрузить изображение по ссылке (HTTP 410)", "other"),
    ("Content rejected by moderation", "moderation"),
])
def test_russian_error_texts_are_classified(text, kind):
    assert classify(text) == kind


def test_the_tariffs_photos_left_are_read_from_limits():
    assert quota_left({"success": True, "limits": {"foto_limit": 123, "text_limit": 123}}) == 123
    assert quota_left({"success": True, "data": {"limits": {"foto_limit": "7"}}}) == 7
    assert quota_left({"success": True}) is None


def zero_quota_error() -> genai_errors.ClientError:
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": (
        "You exceeded your current quota, please check your plan and billing details.\n* Quota exceeded for "
        "metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0, model: "
        "gemini-2.5-flash-image\nPlease retry in 31.2s."), "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31s"}]}}
    return genai_errors.ClientError(429, body)


def test_googles_retry_delay_is_read_from_retry_info_then_from_the_message():
    assert retry_delay(zero_quota_error()) == 31.0
    plain = genai_errors.ClientError(429, {"error": {"code": 429, "message": "Please retry in 1.5s.",
                                                     "status": "RESOURCE_EXHAUSTED"}})
    assert retry_delay(plain) == 1.5
    assert retry_delay(genai_errors.ServerError(503, {"error": {"code": 503, "message": "overloaded"}})) is None


def test_an_html_error_page_is_named_by_its_title():
    page = "<!DOCTYPE html><html><title>Error 502 (Server Error)!!1</title><p>That’s an error.</p></html>"
    err = genai_errors.ServerError(502, {"message": page, "status": "Bad Gateway"})
    assert error_message(err) == "HTML page: Error 502 (Server Error)!!1"
