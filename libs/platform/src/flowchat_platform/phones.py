"""Phone numbers in FlowChat's one canonical form: the WhatsApp id.

A customer's phone number is stored, keyed, published and compared as its
WhatsApp id: E.164 digits without the ``+`` (``4915112345678``), the form Meta's
webhooks carry in ``wa_id`` and ``from`` and accept in ``to``. Every service turns
what a person typed (``+49 151 1234-5678``, ``0049…``, ``whatsapp:+49…``, or a
national number with a default region) into that form with :func:`to_wa_id`.
"""

from __future__ import annotations

import phonenumbers

from flowchat_platform.errors import FlowchatError


class InvalidPhoneNumber(FlowchatError, ValueError):
    """Not a valid international phone number (``field`` names the input, if known)."""


def to_wa_id(raw: str, default_region: str | None = None) -> str:
    """The WhatsApp id (E.164 digits without ``+``) of a phone number.

    Without ``default_region`` the number must be international (a leading ``+``,
    ``00`` or none: WhatsApp ids are written without the ``+``); a national number
    (leading ``0``) then needs the region. Raises :class:`InvalidPhoneNumber`.
    """
    text = (raw or "").strip().removeprefix("whatsapp:").strip()
    if not text:
        raise InvalidPhoneNumber("phone number is required")
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+") and default_region is None:
        if text.startswith("0"):
            raise InvalidPhoneNumber(f"a national number needs the country code: {raw!r}")
        text = "+" + text
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(f"not a valid phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
