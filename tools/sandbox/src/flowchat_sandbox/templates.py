"""Message templates: the send-time checks Meta makes, with its codes.

A template's HEADER (``format: TEXT`` with ``{{…}}`` placeholders, or a media
format) and BODY declare parameters; a send must give the same number (132000) in
the same format (132012): positional ``{{1}}`` parameters carry no
``parameter_name``, named ``{{first_name}}`` ones carry exactly the template's names.
Only APPROVED templates send; PAUSED → 132015, DISABLED → 132016, anything else or
missing in that language → 132001. An AUTHENTICATION template with a one-tap, zero-tap
or copy-code button goes to a phone number only: sent to a BSUID (``recipient``) it is
refused with 131062 (:func:`check_recipient`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowchat_contracts.meta_codes import MetaCode
from flowchat_contracts.whatsapp import (
    TEMPLATE_CATEGORIES,
    TEMPLATE_STATUSES,
    parameter_mismatch,
    placeholders,
)
from flowchat_sandbox.errors import GraphError

STATUSES = TEMPLATE_STATUSES
CATEGORIES = TEMPLATE_CATEGORIES
MEDIA_FORMATS = frozenset({"IMAGE", "VIDEO", "DOCUMENT", "LOCATION"})
#: The one-time-password buttons of authentication templates (``otp_type``).
OTP_TYPES = frozenset({"COPY_CODE", "ONE_TAP", "ZERO_TAP"})
#: Where Meta points an OTP button once the template exists: a template is created with
#: ``{"type": "OTP", "otp_type": …}`` but read back as a URL button to this address
#: (``…/otp/code/?otp_type=COPY_CODE&…``), per Meta's copy-code template page.
OTP_URL = "https://www.whatsapp.com/otp/"


@dataclass
class Template:
    id: str
    waba_id: str
    name: str
    language: str
    status: str = "APPROVED"
    category: str = "UTILITY"
    parameter_format: str = "POSITIONAL"
    components: list[dict[str, Any]] = field(default_factory=list)

    def as_graph(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": self.components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        }


def otp_type(template: Template) -> str | None:
    """``COPY_CODE``, ``ONE_TAP`` or ``ZERO_TAP`` for an AUTHENTICATION template with such a
    button (as created, ``type: OTP``, or as read back, a URL button to :data:`OTP_URL`),
    else None. Case does not matter, as in Meta's template definitions."""
    if template.category.upper() != "AUTHENTICATION":
        return None
    for component in template.components:
        if str(component.get("type", "")).upper() != "BUTTONS":
            continue
        for button in component.get("buttons") or []:
            if not isinstance(button, dict):
                continue
            kind = str(button.get("type", "")).upper()
            if kind == "OTP":
                otp = str(button.get("otp_type", "")).upper()
                if otp in OTP_TYPES:
                    return otp
            url = str(button.get("url", ""))
            if kind == "URL" and url.startswith(OTP_URL):
                otp = url.partition("otp_type=")[2].partition("&")[0].upper()
                return otp if otp in OTP_TYPES else "COPY_CODE"
    return None


def check_recipient(template: Template, *, by_bsuid: bool) -> None:
    """131062 for a one-tap, zero-tap or copy-code authentication template sent to a
    business-scoped user id (``recipient`` without ``to``): those need a phone number."""
    otp = otp_type(template) if by_bsuid else None
    if otp is not None:
        raise GraphError(
            MetaCode.BSUID_UNSUPPORTED_FOR_MESSAGE,
            f"Business-scoped User ID (BSUID) recipients are not supported for this message: "
            f"template {template.name} is an authentication template with a "
            f"{otp.lower().replace('_', '-')} button; send it to the phone number (to).",
        )


def _given(send: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    for component in send.get("components") or []:
        if str(component.get("type", "")).lower() == kind:
            params = component.get("parameters") or []
            return [p for p in params if isinstance(p, dict)]
    return []


def check_send(template: Template | None, send: dict[str, Any]) -> None:
    """Raise :class:`GraphError` as Meta would for this template send."""
    if template is None:
        raise GraphError(
            132001, f"template name ({send.get('name')}) does not exist in the translation"
        )
    if template.status == "PAUSED":
        raise GraphError(132015, f"Template {template.name} is paused.")
    if template.status == "DISABLED":
        raise GraphError(132016, f"Template {template.name} is disabled.")
    if template.status != "APPROVED":
        raise GraphError(132001, f"Template {template.name} is {template.status}, not approved.")
    named = template.parameter_format == "NAMED"
    for component in template.components:
        kind = str(component.get("type", "")).upper()
        if kind not in ("HEADER", "BODY"):
            continue
        given = _given(send, kind.lower())
        fmt = str(component.get("format", "TEXT")).upper()
        if kind == "HEADER" and fmt in MEDIA_FORMATS:
            if len(given) != 1:
                raise GraphError(132000, f"header: expected 1 {fmt.lower()} parameter.")
            if str(given[0].get("type", "")).upper() != fmt:
                raise GraphError(132012, f"header: expected a {fmt.lower()} parameter.")
            continue
        expected = placeholders(str(component.get("text", "")))
        mismatch = parameter_mismatch(
            expected, [p.get("parameter_name") for p in given], named=named
        )
        if mismatch == "count":
            raise GraphError(
                132000,
                f"{kind.lower()}: number of localizable_params ({len(given)}) does not match "
                f"the expected number of params ({len(expected)})",
            )
        if mismatch in ("unnamed", "names"):
            raise GraphError(
                132012, f"{kind.lower()}: expected named parameters {', '.join(expected)}."
            )
        if mismatch == "named_positional":
            raise GraphError(132012, f"{kind.lower()}: template expects positional parameters.")
