"""Domain value checks built on the libraries made for them (pure, no I/O).

Each raises ``ValueError`` with a readable message; the pydantic models turn that
into a 422 whose ``details`` name the field.
"""

from __future__ import annotations

import re
import zoneinfo

import phonenumbers
import pycountry

_LOCALE = re.compile(r"^(?P<lang>[A-Za-z]{2,3})(?:[-_](?P<region>[A-Za-z]{2}|[0-9]{3}))?$")
_TWILIO_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")


def timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


def currency(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    return code


def locale(value: str) -> str:
    """A BCP 47 language tag of the form ``ll`` or ``ll-RR`` (normalized to ``ll-RR``)."""
    match = _LOCALE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a locale such as 'en' or 'pt-BR'")
    lang = match["lang"].lower()
    found = (
        pycountry.languages.get(alpha_2=lang)
        if len(lang) == 2
        else pycountry.languages.get(alpha_3=lang)
    )
    if found is None:
        raise ValueError(f"unknown language {lang!r} in locale {value!r}")
    region = match["region"]
    if region is None:
        return lang
    region = region.upper()
    if region.isalpha() and pycountry.countries.get(alpha_2=region) is None:
        raise ValueError(f"unknown region {region!r} in locale {value!r}")
    return f"{lang}-{region}"


def e164(value: str) -> str:
    """Normalize an international phone number to E.164 (``+14155550100``).

    Accepts display forms such as ``+1 631-555-5555`` and Meta's digits-only form;
    requires a country code. Only the length is checked against the country's plan
    (``is_possible_number``): Meta's own test numbers use the 555 area code.
    """
    raw = value.strip()
    if raw.startswith("whatsapp:"):
        raw = raw[len("whatsapp:") :]
    if raw and raw[0].isdigit():
        raw = "+" + raw
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{value!r} is not an international phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"{value!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def twilio_account_sid(value: str) -> str:
    if not _TWILIO_SID.match(value):
        raise ValueError("a Twilio account SID is 'AC' followed by 32 hex digits")
    return value
