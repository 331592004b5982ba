"""Meta's Cloud API error codes: the one vocabulary FlowChat speaks about them.

Every service that looks at Meta's ``error.code`` (the sender's fates, the
tenant's credential checks, the campaigns' opt-out handling) and the sandbox
that answers with them name the codes here, never as bare numbers. Titles are
Meta's (developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes and
the Graph API's error handling page), checked against
``shared/reference/whatsapp-cloud-api.md`` §2.

Each code belongs to exactly one category; a category is a named frozenset::

    TOKEN        the access token is refused: refresh the credential, retry once
    PERMISSION   the app lacks a permission or capability (also 200-299, see below)
    RATE_LIMIT   app and WABA call-rate limits: back off
    THROUGHPUT   the number's messages-per-second limit (130429): back off
    PAIR_RATE    too many messages to one recipient (131056): hold that recipient
    SPAM_RATE    the number's spam rate limit (131048): pause, check its quality
    SERVER       trouble on Meta's side: back off
    PARAMETER    the request is wrong: fix it, do not retry
    RECIPIENT    this recipient cannot get this message
    WINDOW       outside the 24 h customer-service window (131047): send a template
    OPT_OUT      the user stopped marketing messages (131050): record the opt-out
    TEMPLATE     the template or its parameters are refused
    MEDIA        the media could not be fetched or uploaded
    PAYMENT      the business has a billing problem
    ACCOUNT      the business account or number is blocked, locked or unregistered

``TRANSIENT`` (``SERVER | RATE_LIMIT | THROUGHPUT``) is what a sender retries
with backoff. Meta reports a permission error as any code in 200-299
(``API_PERMISSIONS``); only 200 is a member of :class:`MetaCode`, and
:func:`title` names the whole range.

Meta documents 463 (session expired) and 467 (invalid access token) as the
``error_subcode`` of a 190, and 102 (API session) as a Graph API code; FlowChat
treats all three as token errors wherever they arrive in ``code``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Final

__all__ = [
    "ACCOUNT",
    "ALL",
    "API_PERMISSIONS",
    "CATEGORIES",
    "MEDIA",
    "OPT_OUT",
    "PAIR_RATE",
    "PARAMETER",
    "PAYMENT",
    "PERMISSION",
    "RATE_LIMIT",
    "RECIPIENT",
    "SERVER",
    "SPAM_RATE",
    "TEMPLATE",
    "THROUGHPUT",
    "TITLES",
    "TOKEN",
    "TRANSIENT",
    "WINDOW",
    "MetaCode",
    "category",
    "title",
]


class MetaCode(IntEnum):
    """Every Meta error code FlowChat names (``error.code`` of the Graph API's answer)."""

    # the access token
    AUTH_EXCEPTION = 0
    API_SESSION = 102
    ACCESS_TOKEN_EXPIRED = 190
    SESSION_EXPIRED = 463
    INVALID_ACCESS_TOKEN = 467
    # permissions
    API_METHOD = 3
    PERMISSION_DENIED = 10
    API_PERMISSION = 200
    ACCESS_DENIED = 131005
    # rates and limits
    API_TOO_MANY_CALLS = 4
    WABA_RATE_LIMIT = 80007
    THROUGHPUT_REACHED = 130429
    PAIR_RATE_LIMIT = 131056
    SPAM_RATE_LIMIT = 131048
    # Meta's side
    API_UNKNOWN = 1
    API_SERVICE = 2
    SOMETHING_WENT_WRONG = 131000
    SERVICE_UNAVAILABLE = 131016
    ACCOUNT_IN_MAINTENANCE = 131057
    SERVER_TEMPORARILY_UNAVAILABLE = 133004
    # the request
    INVALID_PARAMETER = 100
    REQUIRED_PARAMETER_MISSING = 131008
    PARAMETER_VALUE_INVALID = 131009
    UNSUPPORTED_MESSAGE_TYPE = 131051
    GENERIC_USER_ERROR = 135000
    # the recipient
    BUSINESS_BLOCKED_USER = 130403
    USER_IN_EXPERIMENT = 130472
    RECIPIENT_IS_SENDER = 131021
    MESSAGE_UNDELIVERABLE = 131026
    RECIPIENT_NOT_ALLOWED = 131030
    ECOSYSTEM_ENGAGEMENT = 131049
    RECIPIENT_ID_UNSUPPORTED = 131064
    BSUID_UNSUPPORTED_FOR_MESSAGE = 131062
    RE_ENGAGEMENT = 131047
    MARKETING_OPT_OUT = 131050
    # templates
    TEMPLATE_NOT_SENDABLE = 131063
    TEMPLATE_PARAM_COUNT_MISMATCH = 132000
    TEMPLATE_DOES_NOT_EXIST = 132001
    TEMPLATE_TEXT_TOO_LONG = 132005
    TEMPLATE_FORMAT_POLICY_VIOLATED = 132007
    TEMPLATE_PARAM_FORMAT_MISMATCH = 132012
    TEMPLATE_PAUSED = 132015
    TEMPLATE_DISABLED = 132016
    # media
    MEDIA_DOWNLOAD_ERROR = 131052
    MEDIA_UPLOAD_ERROR = 131053
    # billing
    PAYMENT_ISSUE = 131042
    # the business account and its number
    POLICY_BLOCK = 368
    COUNTRY_RESTRICTED = 130497
    ACCOUNT_LOCKED = 131031
    DISPLAY_NAME_NOT_APPROVED = 131037
    INCORRECT_CERTIFICATE = 131045
    NUMBER_NOT_REGISTERED = 133010


_C = MetaCode

#: Meta's title of every code.
TITLES: Final[Mapping[MetaCode, str]] = {
    _C.AUTH_EXCEPTION: "AuthException",
    _C.API_SESSION: "API Session",
    _C.ACCESS_TOKEN_EXPIRED: "Access token has expired",
    _C.SESSION_EXPIRED: "Session has expired",
    _C.INVALID_ACCESS_TOKEN: "Invalid access token",
    _C.API_METHOD: "API Method",
    _C.PERMISSION_DENIED: "Permission Denied",
    _C.API_PERMISSION: "API Permission",
    _C.ACCESS_DENIED: "Access denied",
    _C.API_TOO_MANY_CALLS: "API Too Many Calls",
    _C.WABA_RATE_LIMIT: "Rate limit issues",
    _C.THROUGHPUT_REACHED: "Rate limit hit",
    _C.PAIR_RATE_LIMIT: "(Business Account, Consumer Account) pair rate limit hit",
    _C.SPAM_RATE_LIMIT: "Spam rate limit hit",
    _C.API_UNKNOWN: "API Unknown",
    _C.API_SERVICE: "API Service",
    _C.SOMETHING_WENT_WRONG: "Something went wrong",
    _C.SERVICE_UNAVAILABLE: "Service unavailable",
    _C.ACCOUNT_IN_MAINTENANCE: "Account in maintenance mode",
    _C.SERVER_TEMPORARILY_UNAVAILABLE: "Server temporarily unavailable",
    _C.INVALID_PARAMETER: "Invalid parameter",
    _C.REQUIRED_PARAMETER_MISSING: "Required parameter is missing",
    _C.PARAMETER_VALUE_INVALID: "Parameter value is not valid",
    _C.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    _C.GENERIC_USER_ERROR: "Generic user error",
    _C.BUSINESS_BLOCKED_USER: "The business blocked this user",
    _C.USER_IN_EXPERIMENT: "User's number is part of an experiment",
    _C.RECIPIENT_IS_SENDER: "Recipient cannot be sender",
    _C.MESSAGE_UNDELIVERABLE: "Message undeliverable",
    _C.RECIPIENT_NOT_ALLOWED: "Recipient phone number not in allowed list",
    _C.ECOSYSTEM_ENGAGEMENT: (
        "This message was not delivered to maintain healthy ecosystem engagement"
    ),
    _C.RECIPIENT_ID_UNSUPPORTED: "Recipient identifier not supported",
    # authentication templates (one-tap, zero-tap, copy-code) sent by ``recipient``
    _C.BSUID_UNSUPPORTED_FOR_MESSAGE: "BSUID recipients are not supported for this message",
    _C.RE_ENGAGEMENT: "Re-engagement message",
    _C.MARKETING_OPT_OUT: (
        "Unable to deliver the message. This recipient has chosen to stop receiving "
        "marketing messages on WhatsApp from your business"
    ),
    _C.TEMPLATE_NOT_SENDABLE: "Template not sendable by this account",
    _C.TEMPLATE_PARAM_COUNT_MISMATCH: (
        "Number of parameters does not match the expected number of params"
    ),
    _C.TEMPLATE_DOES_NOT_EXIST: "Template name does not exist in the translation",
    _C.TEMPLATE_TEXT_TOO_LONG: "Translated text too long",
    _C.TEMPLATE_FORMAT_POLICY_VIOLATED: "Template format character policy violated",
    _C.TEMPLATE_PARAM_FORMAT_MISMATCH: (
        "Parameter format does not match format in the created template"
    ),
    _C.TEMPLATE_PAUSED: "Template is Paused",
    _C.TEMPLATE_DISABLED: "Template is Disabled",
    _C.MEDIA_DOWNLOAD_ERROR: "Media download error",
    _C.MEDIA_UPLOAD_ERROR: "Media upload error",
    _C.PAYMENT_ISSUE: "Business eligibility payment issue",
    _C.POLICY_BLOCK: "Temporarily blocked for policies violations",
    _C.COUNTRY_RESTRICTED: "Business account is restricted from messaging users in this country",
    _C.ACCOUNT_LOCKED: "Account has been locked",
    _C.DISPLAY_NAME_NOT_APPROVED: (
        "WhatsApp provided number needs display name approval before message can be sent"
    ),
    _C.INCORRECT_CERTIFICATE: "Incorrect certificate",
    _C.NUMBER_NOT_REGISTERED: "Phone number not registered",
}

#: Meta's permission errors: any code in 200-299 (only 200 has a name of its own).
API_PERMISSIONS: Final = range(200, 300)

TOKEN: Final = frozenset(
    {
        _C.AUTH_EXCEPTION,
        _C.API_SESSION,
        _C.ACCESS_TOKEN_EXPIRED,
        _C.SESSION_EXPIRED,
        _C.INVALID_ACCESS_TOKEN,
    }
)
PERMISSION: Final = frozenset(
    {_C.API_METHOD, _C.PERMISSION_DENIED, _C.API_PERMISSION, _C.ACCESS_DENIED}
)
RATE_LIMIT: Final = frozenset({_C.API_TOO_MANY_CALLS, _C.WABA_RATE_LIMIT})
THROUGHPUT: Final = frozenset({_C.THROUGHPUT_REACHED})
PAIR_RATE: Final = frozenset({_C.PAIR_RATE_LIMIT})
SPAM_RATE: Final = frozenset({_C.SPAM_RATE_LIMIT})
SERVER: Final = frozenset(
    {
        _C.API_UNKNOWN,
        _C.API_SERVICE,
        _C.SOMETHING_WENT_WRONG,
        _C.SERVICE_UNAVAILABLE,
        _C.ACCOUNT_IN_MAINTENANCE,
        _C.SERVER_TEMPORARILY_UNAVAILABLE,
    }
)
PARAMETER: Final = frozenset(
    {
        _C.INVALID_PARAMETER,
        _C.REQUIRED_PARAMETER_MISSING,
        _C.PARAMETER_VALUE_INVALID,
        _C.UNSUPPORTED_MESSAGE_TYPE,
        _C.GENERIC_USER_ERROR,
    }
)
RECIPIENT: Final = frozenset(
    {
        _C.BUSINESS_BLOCKED_USER,
        _C.USER_IN_EXPERIMENT,
        _C.RECIPIENT_IS_SENDER,
        _C.MESSAGE_UNDELIVERABLE,
        _C.RECIPIENT_NOT_ALLOWED,
        _C.ECOSYSTEM_ENGAGEMENT,
        _C.RECIPIENT_ID_UNSUPPORTED,
        _C.BSUID_UNSUPPORTED_FOR_MESSAGE,
    }
)
WINDOW: Final = frozenset({_C.RE_ENGAGEMENT})
OPT_OUT: Final = frozenset({_C.MARKETING_OPT_OUT})
TEMPLATE: Final = frozenset(
    {
        _C.TEMPLATE_NOT_SENDABLE,
        _C.TEMPLATE_PARAM_COUNT_MISMATCH,
        _C.TEMPLATE_DOES_NOT_EXIST,
        _C.TEMPLATE_TEXT_TOO_LONG,
        _C.TEMPLATE_FORMAT_POLICY_VIOLATED,
        _C.TEMPLATE_PARAM_FORMAT_MISMATCH,
        _C.TEMPLATE_PAUSED,
        _C.TEMPLATE_DISABLED,
    }
)
MEDIA: Final = frozenset({_C.MEDIA_DOWNLOAD_ERROR, _C.MEDIA_UPLOAD_ERROR})
PAYMENT: Final = frozenset({_C.PAYMENT_ISSUE})
ACCOUNT: Final = frozenset(
    {
        _C.POLICY_BLOCK,
        _C.COUNTRY_RESTRICTED,
        _C.ACCOUNT_LOCKED,
        _C.DISPLAY_NAME_NOT_APPROVED,
        _C.INCORRECT_CERTIFICATE,
        _C.NUMBER_NOT_REGISTERED,
    }
)

#: Every category by name; each code is in exactly one.
CATEGORIES: Final[Mapping[str, frozenset[MetaCode]]] = {
    "token": TOKEN,
    "permission": PERMISSION,
    "rate_limit": RATE_LIMIT,
    "throughput": THROUGHPUT,
    "pair_rate": PAIR_RATE,
    "spam_rate": SPAM_RATE,
    "server": SERVER,
    "parameter": PARAMETER,
    "recipient": RECIPIENT,
    "window": WINDOW,
    "opt_out": OPT_OUT,
    "template": TEMPLATE,
    "media": MEDIA,
    "payment": PAYMENT,
    "account": ACCOUNT,
}

#: Worth retrying later with backoff: Meta's side, or a rate the sender went over.
TRANSIENT: Final = SERVER | RATE_LIMIT | THROUGHPUT

#: Every named code.
ALL: Final = frozenset(MetaCode)


def title(code: int) -> str | None:
    """Meta's title of ``code`` (any of 200-299 is "API Permission"); ``None`` if unnamed."""
    if code in API_PERMISSIONS:
        return TITLES[MetaCode.API_PERMISSION]
    try:
        return TITLES[MetaCode(code)]
    except ValueError:
        return None


def category(code: int) -> str | None:
    """The name of ``code``'s category in :data:`CATEGORIES`; ``None`` if unnamed."""
    if code in API_PERMISSIONS:
        return "permission"
    for name, codes in CATEGORIES.items():
        if code in codes:
            return name
    return None
