from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from console.auth import session_token
from console.i18n import MESSAGES, tr
from console.routes import safe_next
from console.toolkit.columns import Column, display, display_row
from console.toolkit.form import translate_error
from shared.services.inputs import (
    ChannelInput,
    GroupInput,
    KeyInput,
    PriceInput,
    SignInInput,
    field_errors,
)


def test_every_message_has_english_and_chinese():
    for key, (english, chinese) in MESSAGES.items():
        assert chinese.strip() or key == "table.pages", key
        assert english.strip() or key == "table.pages", key
        assert english.count("{") == chinese.count("{"), key


def test_tr_fills_values_in_either_language():
    assert tr("en", "redeem.done", amount="5") == "5 USD added to your balance."
    assert tr("zh", "redeem.done", amount="5") == "已向余额充值 5 美元。"


def test_session_token_reads_only_the_session_cookie():
    assert session_token("a=1; tollgate_session=abc; tollgate_lang=zh") == "abc"
    assert session_token("tollgate_lang=zh") == ""
    assert session_token("") == ""
    assert session_token('broken="') == ""


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/tenant/keys", "/tenant/keys"),
        (None, "/"),
        ("", "/"),
        ("https://elsewhere.example/", "/"),
        ("//elsewhere.example/", "/"),
        ("/\\elsewhere", "/"),
    ],
)
def test_safe_next_keeps_only_local_paths(given, expected):
    assert safe_next(given) == expected


def test_display_formats_by_kind():
    assert display(None) == "—"
    assert display(1_500_000_000, "usd") == "1.5"
    assert display(Decimal("2.500000000")) == "2.5"
    assert display(["a", "b"]) == "a, b"
    assert display([]) == "—"
    when = datetime.datetime(2026, 12, 4, 8, 30, tzinfo=datetime.UTC)
    assert display(when) == "2026-12-04 08:30:00"


def test_display_row_shows_only_columns_and_id():
    row = {"id": 7, "name": "x", "channel": "secret-upstream", "balance": 10**9}
    shown = display_row(row, (Column("name", "col.name"), Column("balance", "col.balance", "usd")))
    assert shown == {"id": "7", "name": "x", "balance": "1"}


def test_field_errors_report_every_wrong_field():
    errors = field_errors(
        ChannelInput,
        {"name": "has space", "kind": "nope", "base_url": "ftp://x", "models": "", "weight": "-1"},
    )
    assert set(errors) == {"name", "kind", "base_url", "models", "weight"}
    assert field_errors(GroupInput, {"name": "ok", "ratio": "0.8"}) == {}
    assert field_errors(PriceInput, {"model": "m", "input": "1.123456789", "output": "8"}) == {}
    assert "output" in field_errors(PriceInput, {"model": "m", "input": "1", "output": "-8"})
    assert field_errors(SignInInput, {"username": "admin"}) == {
        "password": "Expected `str` of length >= 1"
    }
    assert field_errors(KeyInput, {"rpm_limit": "0"}) == {
        "rpm_limit": "Expected `str` matching regex '^$|^[1-9][0-9]{0,6}$'"
    }


@pytest.mark.parametrize(
    ("message", "english", "chinese"),
    [
        ("Expected `str` of length >= 1", "Required.", "必填。"),
        ("Expected `str` of length >= 10", "At least 10 characters.", "至少 10 个字符。"),
        ("Expected `str` of length <= 64", "At most 64 characters.", "最多 64 个字符。"),
        ("Expected `int`, got `str`", "A whole number.", "请输入整数。"),
        ("Expected `int` >= 0", "At least 0.", "不能小于 0。"),
        ("Invalid enum value 'x'", "Choose one of the options.", "请选择一个选项。"),
        ("Expected `str` matching regex '^x$'", "Not in the expected format.", "格式不正确。"),
    ],
)
def test_translate_error_in_both_languages(message, english, chinese):
    assert translate_error(message, "en") == english
    assert translate_error(message, "zh") == chinese


def test_translate_error_uses_the_field_hint_for_formats():
    assert translate_error("Expected `str` matching regex '^x$'", "en", "form.usd") == (
        "A USD amount such as 12.50."
    )


def test_sign_in_redirect_cannot_break_out_of_its_script() -> None:
    from console.routes import _leave, safe_next

    page = _leave("/</script><script>alert(1)</script>").body.decode()
    assert "</script><script>" not in page
    assert safe_next("/x<y") == "/"
    assert safe_next("//evil.example") == "/"
    assert safe_next("/tenant/logs?page=2") == "/tenant/logs?page=2"
