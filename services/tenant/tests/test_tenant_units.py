"""Unit tests without I/O: validation, crypto, keys, ETags, Graph error mapping, settings."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken
from pydantic import ValidationError

from flowchat_platform.settings import load_settings
from flowchat_tenant import validation
from flowchat_tenant.crypto import SecretBox, digest
from flowchat_tenant.errors import InvalidCredentials, InvalidInput, NotFound, ProviderError
from flowchat_tenant.models import ApiKeyCreate, MetaAccountCreate, TenantCreate
from flowchat_tenant.permissions import Principal
from flowchat_tenant.ports import PhoneNumberInfo
from flowchat_tenant.provider import raise_for_graph_error
from flowchat_tenant.routes.internal import etag_matches
from flowchat_tenant.service import TenantService, check_display_number, parse_api_key
from flowchat_tenant.settings import Settings


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+14155550100", "+14155550100"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("14155550100", "+14155550100"),
        ("whatsapp:+447911123456", "+447911123456"),
        ("+1 555-010-0001", "+15550100001"),
    ],
)
def test_e164_normalizes(raw, expected):
    assert validation.e164(raw) == expected


@pytest.mark.parametrize("raw", ["12345", "+1 abc", "", "+999 1234", "0044 12"])
def test_e164_refuses(raw):
    with pytest.raises(ValueError, match="phone number"):
        validation.e164(raw)


def test_timezone_currency_locale():
    assert validation.timezone("America/Sao_Paulo") == "America/Sao_Paulo"
    for bad in ("Mars/Base", "../../etc/passwd", ""):
        with pytest.raises(ValueError, match="time zone"):
            validation.timezone(bad)
    assert validation.currency("brl") == "BRL"
    for bad in ("XYZ", "EURO", "12"):
        with pytest.raises(ValueError, match="ISO 4217"):
            validation.currency(bad)
    assert validation.locale("pt_br") == "pt-BR"
    assert validation.locale("en") == "en"
    for bad in ("zz", "en-QQ", "english"):
        with pytest.raises(ValueError, match=r"locale|language|region"):
            validation.locale(bad)


def test_models_name_the_bad_field():
    with pytest.raises(ValidationError) as info:
        TenantCreate(name="x", currency="ABC")
    assert info.value.errors()[0]["loc"] == ("currency",)
    assert info.value.errors()[0]["type"] == "invalid_currency"
    with pytest.raises(ValidationError):
        TenantCreate(name="")
    with pytest.raises(ValidationError) as info:
        MetaAccountCreate(
            provider="meta",
            phone_number_id="1",
            waba_id="2",
            display_phone_number="123",
            app_secret="app-secret-1",
            verify_token="verify-token-1",
            access_token="access-token-1",
        )
    assert info.value.errors()[0]["type"] == "invalid_phone_number"
    assert ApiKeyCreate(name="k", scopes=["send", "admin", "send"]).scopes == ["admin", "send"]
    with pytest.raises(ValidationError):
        ApiKeyCreate(name="k", scopes=["root"])
    with pytest.raises(ValidationError):
        ApiKeyCreate(name="k", scopes=[])


def test_secret_box_encrypts_authenticated_and_rotates():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    box_old = SecretBox.from_keys(old)
    ciphertext = box_old.encrypt("EAAG-token")
    assert ciphertext is not None
    assert b"EAAG-token" not in ciphertext
    assert box_old.decrypt(ciphertext) == "EAAG-token"
    assert box_old.encrypt(None) is None
    assert box_old.decrypt(None) is None
    tampered = ciphertext[:-2] + (b"A" if ciphertext[-2:-1] != b"A" else b"B") + ciphertext[-1:]
    with pytest.raises(InvalidToken):
        box_old.decrypt(tampered)

    both = SecretBox.from_keys(f" {new} , {old} ")
    assert both.key_count == 2
    assert both.decrypt(ciphertext) == "EAAG-token"
    rotated = both.rotate(ciphertext)
    assert rotated is not None
    assert SecretBox.from_keys(new).decrypt(rotated) == "EAAG-token"
    with pytest.raises(InvalidToken):
        box_old.decrypt(rotated)


@pytest.mark.parametrize("raw", ["", " , ", "not-a-key", "a" * 44])
def test_secret_box_refuses_bad_keys_without_echoing_them(raw):
    with pytest.raises(ValueError, match="key") as info:
        SecretBox.from_keys(raw)
    if raw.strip(", "):
        assert raw not in str(info.value)


def test_parse_api_key():
    assert parse_api_key("fc_key_0123abcd_" + "f" * 64) == "key_0123abcd"
    for bad in ("key_1_" + "f" * 64, "fc_" + "f" * 64, "fc_key_1_short", "fc_abc_" + "f" * 64):
        assert parse_api_key(bad) is None
    assert digest("a") != digest("b")
    assert len(digest("a")) == 64


def test_etag_matching():
    etag = '"acc_1-3"'
    assert etag_matches(etag, etag)
    assert etag_matches(f'"x", W/{etag}', etag)
    assert etag_matches("*", etag)
    assert not etag_matches('"acc_1-2"', etag)
    assert not etag_matches(None, etag)


def test_graph_errors_map_to_fields():
    with pytest.raises(InvalidCredentials) as info:
        raise_for_graph_error(
            401, {"error": {"code": 190, "message": "Invalid OAuth access token"}}
        )
    assert info.value.field == "access_token"
    assert info.value.code == "invalid_credentials"
    with pytest.raises(InvalidCredentials):
        raise_for_graph_error(400, {"error": {"code": 190}})
    with pytest.raises(InvalidInput) as unknown:
        raise_for_graph_error(400, {"error": {"code": 100, "error_subcode": 33}})
    assert unknown.value.field == "phone_number_id"
    with pytest.raises(ProviderError) as down:
        raise_for_graph_error(503, None)
    assert down.value.status == 503


def test_phone_number_info_from_meta_shape():
    info = PhoneNumberInfo.from_graph(
        "106",
        {
            "display_phone_number": "+1 631-555-5555",
            "verified_name": "Jasper's Market",
            "quality_rating": "GREEN",
            "throughput": {"level": "HIGH"},
            "id": "106",
        },
    )
    assert info.throughput_mps == 1000
    assert info.messaging_limit_tier is None
    assert PhoneNumberInfo.from_graph("1", {}).throughput_mps is None
    check_display_number("+16315555555", info)
    with pytest.raises(InvalidInput) as mismatch:
        check_display_number("+16315555556", info)
    assert mismatch.value.code == "phone_number_mismatch"


def test_authorization_rules():
    operator = Principal.the_operator()
    admin = Principal(operator=False, tenant_id="tnt_a", key_id="key_1", scopes=("admin",))
    sender = Principal(operator=False, tenant_id="tnt_a", key_id="key_2", scopes=("send",))
    TenantService.authorize(operator, "tnt_b", "tenant.update")
    TenantService.authorize(admin, "tnt_a", "keys.write")
    with pytest.raises(NotFound):
        TenantService.authorize(admin, "tnt_b", "tenant.read")
    with pytest.raises(NotFound):  # another tenant: not found, whatever the scopes
        TenantService.authorize(sender, "tnt_b", "tenant.read")
    with pytest.raises(Exception, match="admin"):
        TenantService.authorize(sender, "tnt_a", "tenant.read")


GOOD_KEY = Fernet.generate_key().decode()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FLOWCHAT_SERVICE_TOKEN", None),
        ("FLOWCHAT_SERVICE_TOKEN", "changeme"),
        ("FLOWCHAT_SERVICE_TOKEN", "short"),
        ("FLOWCHAT_OPERATOR_KEY", None),
        ("FLOWCHAT_OPERATOR_KEY", "<operator key>"),
        ("FLOWCHAT_TENANT_ENCRYPTION_KEYS", None),
        ("FLOWCHAT_TENANT_ENCRYPTION_KEYS", "not-a-fernet-key"),
        ("FLOWCHAT_TENANT_ENCRYPTION_KEYS", f"{GOOD_KEY},changeme"),
    ],
)
def test_start_refuses_missing_or_placeholder_secrets(monkeypatch, capsys, variable, value):
    env = {
        "FLOWCHAT_SERVICE_TOKEN": "a-real-service-token-0123456789",
        "FLOWCHAT_OPERATOR_KEY": "a-real-operator-key-0123456789",
        "FLOWCHAT_TENANT_ENCRYPTION_KEYS": GOOD_KEY,
    }
    for name, v in env.items():
        monkeypatch.setenv(name, v)
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_info:
        load_settings(Settings)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert variable in err
    if value and len(value) > 8:
        assert value not in err


def test_settings_defaults(monkeypatch):
    monkeypatch.setenv("FLOWCHAT_SERVICE_TOKEN", "a-real-service-token-0123456789")
    monkeypatch.setenv("FLOWCHAT_OPERATOR_KEY", "a-real-operator-key-0123456789")
    monkeypatch.setenv("FLOWCHAT_TENANT_ENCRYPTION_KEYS", GOOD_KEY)
    settings = load_settings(Settings)
    assert settings.http_port == 8701
    assert settings.graph_url == "https://graph.facebook.com"
    assert settings.graph_version == "v23.0"
    assert settings.secret_box().key_count == 1
