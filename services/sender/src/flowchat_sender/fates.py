"""What every provider error means for the message: the one table (reference §2, §8).

Meta's codes come from ``error.code`` of the Graph API's answer; Meta gives no
HTTP status per code, so the code decides, and the HTTP status only matters when
there is no error JSON at all (a proxy's 502, say). Twilio's come from its JSON
error's ``code``.

Fates:

- ``RETRY``: try again with exponential backoff (a retry tier), up to the attempt limit.
- ``RETRY_RECIPIENT``: the (business, customer) pair is over Meta's pair rate; hold
  that recipient only, 4^X seconds, then retry.
- ``REFRESH_CREDENTIALS``: the token was refused (every code of
  :data:`flowchat_contracts.meta_codes.TOKEN`: 0, 102, 190, 463, 467); fetch fresh
  credentials once and retry; refused again → fail.
- ``FAIL``: permanent; a failed ``SendResult`` at once, with the reason.

Meta's codes are named once, in :mod:`flowchat_contracts.meta_codes` (its categories
say what kind of refusal each is); this module only decides their fates.
:func:`classified` says whether a code has a fate of its own (a test checks that
every code the sandbox can answer does).

FlowChat's own failures (no provider involved) use negative codes, listed below.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from flowchat_contracts import meta_codes, twilio_codes
from flowchat_contracts.meta_codes import MetaCode


class Fate(StrEnum):
    RETRY = "retry"
    RETRY_RECIPIENT = "retry_recipient"
    REFRESH_CREDENTIALS = "refresh_credentials"
    FAIL = "fail"


@dataclass(frozen=True)
class Rule:
    fate: Fate
    #: Why, in words an operator acts on (shown in failed results and DLQ headers).
    hint: str


# FlowChat's own codes (never sent by a provider).
NETWORK_ERROR = -1
HTTP_ERROR = -2
UNKNOWN_ACCOUNT = -10
TENANT_SUSPENDED = -11
ACCOUNT_DISABLED = -12
ACCOUNT_MISMATCH = -13
UNSUPPORTED_CONTENT = -14
MISSING_CREDENTIALS = -15
#: Guards of :mod:`flowchat_sender.templates`, :mod:`flowchat_sender.media` and the
#: opt-out set (refused before any provider call).
OPTED_OUT = -16
TEMPLATE_UNKNOWN = -20
TEMPLATE_NOT_APPROVED = -21
TEMPLATE_PARAMETER_COUNT = -22
TEMPLATE_PARAMETER_FORMAT = -23
MEDIA_REFUSED = -24
#: The provider cannot address the command's recipient (a BSUID on Twilio).
RECIPIENT_UNSUPPORTED = -25
#: An operator discarded the parked command (``POST /internal/v1/dlq/discard``).
DISCARDED = -26

#: Meta throughput reached: the number's own rate is lowered for a while.
META_THROUGHPUT = int(MetaCode.THROUGHPUT_REACHED)
#: Meta pair rate: hold that recipient.
META_PAIR_RATE = int(MetaCode.PAIR_RATE_LIMIT)
#: Outside the 24 h customer-service window (Meta, Twilio).
META_WINDOW = int(MetaCode.RE_ENGAGEMENT)
TWILIO_WINDOW = 63016

_R = Fate.RETRY
_F = Fate.FAIL
_C = MetaCode

#: Meta's codes (named in :mod:`flowchat_contracts.meta_codes`) and their fates.
META: dict[int, Rule] = {
    # retry with backoff (meta_codes.TRANSIENT)
    _C.API_UNKNOWN: Rule(_R, "API unknown error; check the platform status, then retry"),
    _C.API_SERVICE: Rule(_R, "API service temporarily down"),
    _C.API_TOO_MANY_CALLS: Rule(_R, "app call rate limit reached"),
    _C.WABA_RATE_LIMIT: Rule(_R, "WhatsApp Business Account rate limit reached"),
    _C.THROUGHPUT_REACHED: Rule(
        _R, "number throughput reached; the number's rate is lowered for a while"
    ),
    _C.SOMETHING_WENT_WRONG: Rule(_R, "unknown error at Meta"),
    _C.SERVICE_UNAVAILABLE: Rule(_R, "service unavailable"),
    _C.ACCOUNT_IN_MAINTENANCE: Rule(_R, "account in maintenance (throughput upgrade)"),
    _C.SERVER_TEMPORARILY_UNAVAILABLE: Rule(_R, "server temporarily unavailable"),
    # that recipient only, later (meta_codes.PAIR_RATE)
    _C.PAIR_RATE_LIMIT: Rule(
        Fate.RETRY_RECIPIENT, "pair rate limit for this recipient; held 4^X s"
    ),
    # the credential (meta_codes.TOKEN)
    _C.AUTH_EXCEPTION: Rule(Fate.REFRESH_CREDENTIALS, "access token refused (AuthException)"),
    _C.API_SESSION: Rule(Fate.REFRESH_CREDENTIALS, "API session invalid or expired"),
    _C.ACCESS_TOKEN_EXPIRED: Rule(Fate.REFRESH_CREDENTIALS, "access token invalid or expired"),
    _C.SESSION_EXPIRED: Rule(Fate.REFRESH_CREDENTIALS, "access token session expired"),
    _C.INVALID_ACCESS_TOKEN: Rule(Fate.REFRESH_CREDENTIALS, "invalid access token"),
    # permanent
    _C.API_METHOD: Rule(_F, "the app lacks the capability for this call"),
    _C.PERMISSION_DENIED: Rule(_F, "permission denied"),
    _C.INVALID_PARAMETER: Rule(_F, "invalid parameter"),
    _C.POLICY_BLOCK: Rule(_F, "temporarily blocked for policy violations"),
    _C.BUSINESS_BLOCKED_USER: Rule(_F, "the business blocked this user"),
    _C.USER_IN_EXPERIMENT: Rule(_F, "the user's number is part of an experiment"),
    _C.COUNTRY_RESTRICTED: Rule(_F, "messaging to this country is restricted"),
    _C.ACCESS_DENIED: Rule(_F, "access denied"),
    _C.REQUIRED_PARAMETER_MISSING: Rule(_F, "a required parameter is missing"),
    _C.PARAMETER_VALUE_INVALID: Rule(_F, "a parameter value is invalid"),
    _C.RECIPIENT_IS_SENDER: Rule(_F, "sender and recipient are the same number"),
    _C.MESSAGE_UNDELIVERABLE: Rule(_F, "message undeliverable to this user"),
    _C.RECIPIENT_NOT_ALLOWED: Rule(_F, "recipient not in the allowed list (test number)"),
    _C.ACCOUNT_LOCKED: Rule(_F, "business account locked"),
    _C.DISPLAY_NAME_NOT_APPROVED: Rule(_F, "the number needs an approved display name"),
    _C.PAYMENT_ISSUE: Rule(_F, "business payment issue (billing)"),
    _C.INCORRECT_CERTIFICATE: Rule(_F, "the number is not registered (certificate)"),
    _C.RE_ENGAGEMENT: Rule(
        _F, "more than 24 hours since the customer last wrote: send an approved template instead"
    ),
    _C.SPAM_RATE_LIMIT: Rule(_F, "spam rate limit hit: pause and check the number's quality"),
    _C.ECOSYSTEM_ENGAGEMENT: Rule(
        _F, "not delivered to keep the ecosystem healthy; wait at least 24 h"
    ),
    _C.MARKETING_OPT_OUT: Rule(_F, "the user stopped marketing messages (record the opt-out)"),
    _C.UNSUPPORTED_MESSAGE_TYPE: Rule(_F, "unsupported message type"),
    _C.MEDIA_DOWNLOAD_ERROR: Rule(_F, "media download error"),
    _C.MEDIA_UPLOAD_ERROR: Rule(_F, "media upload failed"),
    _C.TEMPLATE_NOT_SENDABLE: Rule(_F, "template not sendable by this account"),
    _C.RECIPIENT_ID_UNSUPPORTED: Rule(_F, "recipient identifier not supported"),
    _C.BSUID_UNSUPPORTED_FOR_MESSAGE: Rule(
        _F,
        "authentication templates (one-tap, zero-tap, copy-code) cannot go to a BSUID: "
        "send to the customer's phone number",
    ),
    _C.TEMPLATE_PARAM_COUNT_MISMATCH: Rule(
        _F, "template parameter count does not match the template"
    ),
    _C.TEMPLATE_DOES_NOT_EXIST: Rule(_F, "template missing or not approved in that language"),
    _C.TEMPLATE_TEXT_TOO_LONG: Rule(_F, "translated template text too long"),
    _C.TEMPLATE_FORMAT_POLICY_VIOLATED: Rule(_F, "template content violates the format policy"),
    _C.TEMPLATE_PARAM_FORMAT_MISMATCH: Rule(
        _F, "template parameter format does not match the template"
    ),
    _C.TEMPLATE_PAUSED: Rule(_F, "template paused for low quality"),
    _C.TEMPLATE_DISABLED: Rule(_F, "template disabled for low quality"),
    _C.NUMBER_NOT_REGISTERED: Rule(_F, "the phone number is not registered on the Cloud API"),
    _C.GENERIC_USER_ERROR: Rule(_F, "generic user error"),
}
for _code in meta_codes.API_PERMISSIONS:  # permissions
    META.setdefault(_code, Rule(_F, "the app lacks a permission for this number"))


def _twilio(code: int, fate: Fate, advice: str = "") -> Rule:
    """A Twilio code's rule, named by Twilio's title (:mod:`flowchat_contracts.twilio_codes`)."""
    title = twilio_codes.title(code)
    return Rule(fate, f"{title}; {advice}" if advice else title)


#: Twilio's codes (titled in :mod:`flowchat_contracts.twilio_codes`) and their fates.
TWILIO: dict[int, Rule] = {
    20003: _twilio(20003, Fate.REFRESH_CREDENTIALS),
    20429: _twilio(20429, _R, "Twilio API rate limit"),
    30001: _twilio(30001, _R),
    63018: _twilio(63018, _R),
    63016: _twilio(63016, _F, "a template is a ContentSid"),
    63024: _twilio(63024, _F),
    63032: _twilio(63032, _F),
    21211: _twilio(21211, _F),
    21408: _twilio(21408, _F),
    21610: _twilio(21610, _F),
    63007: _twilio(63007, _F, "no WhatsApp sender for 'From'"),
    63013: _twilio(63013, _F),
}

OWN: dict[int, Rule] = {
    NETWORK_ERROR: Rule(_R, "network error before the request reached the provider"),
    UNKNOWN_ACCOUNT: Rule(_F, "unknown business account"),
    TENANT_SUSPENDED: Rule(_F, "the tenant is suspended"),
    ACCOUNT_DISABLED: Rule(_F, "the business account is disabled"),
    ACCOUNT_MISMATCH: Rule(_F, "the account belongs to another tenant"),
    UNSUPPORTED_CONTENT: Rule(_F, "this provider cannot send this content type"),
    MISSING_CREDENTIALS: Rule(_F, "the account has no credentials for its provider"),
    OPTED_OUT: Rule(_F, "the customer opted out of marketing messages; not sent"),
    TEMPLATE_UNKNOWN: Rule(_F, "template not in the account's catalog in that language"),
    TEMPLATE_NOT_APPROVED: Rule(_F, "template not APPROVED: only approved templates are sent"),
    TEMPLATE_PARAMETER_COUNT: Rule(_F, "template parameter count does not match the template"),
    TEMPLATE_PARAMETER_FORMAT: Rule(
        _F, "template parameter format does not match the template (named, positional, type)"
    ),
    MEDIA_REFUSED: Rule(_F, "media type or size not accepted by WhatsApp"),
    RECIPIENT_UNSUPPORTED: Rule(
        _F, "this provider cannot address a BSUID: send to the customer's phone number"
    ),
    DISCARDED: Rule(_F, "discarded from the DLQ by an operator; never sent"),
}

_UNKNOWN_CODE = Rule(_F, "unclassified provider error")
_SERVER_ERROR = Rule(_R, "provider server error")


def rule_for(
    provider: Literal["meta", "twilio", "flowchat"], code: int, *, http_status: int | None = None
) -> Rule:
    """The fate of ``code`` from ``provider``.

    ``HTTP_ERROR`` (an answer without an error body) is decided by the HTTP status.
    An unlisted code is permanent (retrying an unknown refusal risks the number's
    quality for nothing) unless the provider answered with HTTP 5xx or 429.
    """
    table = META if provider == "meta" else TWILIO if provider == "twilio" else OWN
    rule = table.get(code)
    if rule is not None:
        return rule
    if http_status is not None and (http_status >= 500 or http_status == 429):
        return _SERVER_ERROR
    return _UNKNOWN_CODE


def classified(provider: Literal["meta", "twilio", "flowchat"], code: int) -> bool:
    """Whether ``code`` from ``provider`` has a fate of its own (not "unclassified")."""
    table = META if provider == "meta" else TWILIO if provider == "twilio" else OWN
    return code in table


def pair_hold_s(attempt: int) -> float:
    """Meta's advice for 131056: wait 4^X seconds, X = 0, 1, 2, … (capped at ~17 min)."""
    return 4.0 ** max(0, min(attempt, 5))


def backoff_s(attempt: int) -> float:
    """Delay before retry number ``attempt`` (1-based): 5 s, 20 s, 80 s, 320 s, …"""
    return 5.0 * 4.0 ** max(0, attempt - 1)
