"""The sandbox's errors: what Meta and Twilio would answer, as exceptions.

::

    SandboxError
    ├── GraphError(code, details, status)    a Cloud API error; the route renders Meta's JSON
    ├── TwilioError(code, message, status)   a Twilio REST error; rendered in Twilio's JSON
    └── ControlError(status, message)        a bad call to the sandbox's own control API

:data:`META_ERRORS` is the one table of Meta codes the sandbox emits; the codes and
Meta's titles come from FlowChat's vocabulary, :mod:`flowchat_contracts.meta_codes`
(a test checks that the sender has a fate for every one of them).
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from flowchat_contracts.meta_codes import TITLES, MetaCode

_C = MetaCode

#: What the sandbox answers for each code it emits: (code, default details, HTTP status).
_ANSWERS: tuple[tuple[MetaCode, str, int], ...] = (
    (_C.API_SERVICE, "Temporary due to downtime or overload.", 503),
    (_C.PERMISSION_DENIED, "Permission denied.", 403),
    (_C.INVALID_PARAMETER, "Invalid parameter.", 400),
    (_C.ACCESS_TOKEN_EXPIRED, "The access token could not be decrypted or has expired.", 401),
    (_C.THROUGHPUT_REACHED, "Cloud API message throughput has been reached.", 400),
    (_C.SOMETHING_WENT_WRONG, "Message failed to send due to an unknown error.", 500),
    (_C.REQUIRED_PARAMETER_MISSING, "A required parameter is missing.", 400),
    (_C.PARAMETER_VALUE_INVALID, "One or more parameter values are invalid.", 400),
    (
        _C.MESSAGE_UNDELIVERABLE,
        "Unable to deliver message. The recipient may not be a WhatsApp user.",
        400,
    ),
    (
        _C.RE_ENGAGEMENT,
        "Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number.",
        400,
    ),
    (_C.MARKETING_OPT_OUT, "The recipient has opted out of marketing messages.", 400),
    (
        _C.BSUID_UNSUPPORTED_FOR_MESSAGE,
        "Business-scoped User ID (BSUID) recipients are not supported for this message.",
        400,
    ),
    (_C.UNSUPPORTED_MESSAGE_TYPE, "Message type is not currently supported.", 400),
    (_C.MEDIA_UPLOAD_ERROR, "Unable to upload the media used in the message.", 400),
    (
        _C.PAIR_RATE_LIMIT,
        "Too many messages sent from the sender phone number to the same recipient phone "
        "number in a short period of time.",
        400,
    ),
    (
        _C.TEMPLATE_PARAM_COUNT_MISMATCH,
        "The number of variable parameter values does not match the number of variable "
        "parameters defined for the template.",
        400,
    ),
    (
        _C.TEMPLATE_DOES_NOT_EXIST,
        "The template does not exist in the specified language or it has not been approved.",
        400,
    ),
    (_C.TEMPLATE_PARAM_FORMAT_MISMATCH, "Variable parameter values formatted incorrectly.", 400),
    (_C.TEMPLATE_PAUSED, "The template is paused due to low quality.", 400),
    (_C.TEMPLATE_DISABLED, "The template has been paused too many times.", 400),
)

#: code → (title, default details, HTTP status): codes and titles from the vocabulary.
META_ERRORS: dict[int, tuple[str, str, int]] = {
    int(code): (TITLES[code], details, status) for code, details, status in _ANSWERS
}


def fbtrace_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(17)).decode().rstrip("=")


class SandboxError(Exception):
    """Base of the sandbox's own exceptions."""


class GraphError(SandboxError):
    """A Cloud API error, rendered exactly in Meta's shape."""

    def __init__(
        self,
        code: int,
        details: str | None = None,
        *,
        status: int | None = None,
        subcode: int | None = None,
        message: str | None = None,
    ) -> None:
        code = int(code)  # a MetaCode member renders as its number
        title, default_details, default_status = META_ERRORS.get(
            code, ("Unknown error", "Unknown error.", 400)
        )
        super().__init__(f"({code}) {title}: {details or default_details}")
        self.code = code
        self.title = title
        self.details = details or default_details
        self.status = status or default_status
        self.subcode = subcode
        self.message = message or f"(#{code}) {title}"

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": "OAuthException",
            "code": self.code,
            "error_data": {"messaging_product": "whatsapp", "details": self.details},
            "fbtrace_id": fbtrace_id(),
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        return {"error": error}

    def status_error(self) -> dict[str, Any]:
        """The same error as it appears in a ``failed`` status webhook (``statuses[].errors``)."""
        return {
            "code": self.code,
            "title": self.title,
            "message": self.title,
            "error_data": {"details": self.details},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }


#: Meta's error body, for the OpenAPI of the Graph routes.
GRAPH_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": "integer"},
                "error_subcode": {"type": "integer"},
                "error_data": {"type": "object"},
                "fbtrace_id": {"type": "string"},
            },
        }
    },
}
#: Twilio's error body, for the OpenAPI of the Twilio routes.
TWILIO_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message", "status"],
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "more_info": {"type": "string"},
        "status": {"type": "integer"},
    },
}


def error_responses(schema: dict[str, Any], *statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a router whose errors have a provider's shape."""
    return {
        status: {
            "description": "An error in the provider's own shape",
            "content": {"application/json": {"schema": schema}},
        }
        for status in statuses
    }


class TwilioError(SandboxError):
    """A Twilio REST error: ``{"code", "message", "more_info", "status"}``."""

    def __init__(self, code: int, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


class ControlError(SandboxError):
    """A bad call to the control API (unknown number, customer, template…)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
