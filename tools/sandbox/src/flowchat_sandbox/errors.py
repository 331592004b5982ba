"""The sandbox's errors: what Meta and Twilio would answer, as exceptions.

::

    SandboxError
    ├── GraphError(code, details, status)    a Cloud API error; the route renders Meta's JSON
    ├── TwilioError(code, message, status)   a Twilio REST error; rendered in Twilio's JSON
    └── ControlError(status, message)        a bad call to the sandbox's own control API

:data:`META_ERRORS` is the one table of Meta codes the sandbox emits, with Meta's
titles (developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

#: code → (title, default details, HTTP status)
META_ERRORS: dict[int, tuple[str, str, int]] = {
    2: ("Service temporarily unavailable", "Temporary due to downtime or overload.", 503),
    10: ("Application does not have permission for this action", "Permission denied.", 403),
    100: ("Invalid parameter", "Invalid parameter.", 400),
    190: (
        "Invalid OAuth access token - Cannot parse access token",
        "The access token could not be decrypted or has expired.",
        401,
    ),
    130429: ("Rate limit hit", "Cloud API message throughput has been reached.", 400),
    131000: ("Something went wrong", "Message failed to send due to an unknown error.", 500),
    131008: ("Required parameter is missing", "A required parameter is missing.", 400),
    131009: ("Parameter value is not valid", "One or more parameter values are invalid.", 400),
    131026: (
        "Message undeliverable",
        "Unable to deliver message. The recipient may not be a WhatsApp user.",
        400,
    ),
    131047: (
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number.",
        400,
    ),
    131050: (
        "Unable to deliver the message. This recipient has chosen to stop receiving "
        "marketing messages on WhatsApp from your business",
        "The recipient has opted out of marketing messages.",
        400,
    ),
    131051: ("Unsupported message type", "Message type is not currently supported.", 400),
    131053: (
        "Media upload error",
        "Unable to upload the media used in the message.",
        400,
    ),
    131056: (
        "(Business Account, Consumer Account) pair rate limit hit",
        "Too many messages sent from the sender phone number to the same recipient phone "
        "number in a short period of time.",
        400,
    ),
    132000: (
        "Number of parameters does not match the expected number of params",
        "The number of variable parameter values does not match the number of variable "
        "parameters defined for the template.",
        400,
    ),
    132001: (
        "Template name does not exist in the translation",
        "The template does not exist in the specified language or it has not been approved.",
        400,
    ),
    132012: (
        "Parameter format does not match format in the created template",
        "Variable parameter values formatted incorrectly.",
        400,
    ),
    132015: ("Template is Paused", "The template is paused due to low quality.", 400),
    132016: ("Template is Disabled", "The template has been paused too many times.", 400),
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
