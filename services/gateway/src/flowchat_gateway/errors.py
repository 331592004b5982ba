"""The gateway's own exceptions; ``app.py``'s one handler answers each with one status
and FlowChat's error body (``{"error": {"code", "message", "details"}}``).

::

    FlowchatError                    (flowchat_platform.errors)
    ├── GatewayError                 base of the gateway's own
    │   ├── InvalidSignature         401 invalid_signature: nothing is published
    │   ├── UnknownAccount           404 not_found: a Twilio webhook for an account FlowChat lacks
    │   ├── Unavailable              503 unavailable: broker, tenant service, state-manager or
    │   │                            Redis (send API) cannot answer; the caller retries (Meta
    │   │                            does, for 7 days)
    │   ├── InFlight                 409 in_flight: a webhook event another request is still
    │   │                            publishing (or one that died left its claim: it expires
    │   │                            in ``dedupe_claim_s``); the provider retries, then finds
    │   │                            it done (a duplicate) or free
    │   ├── SendRejected             the send or query API refuses the request (4xx): its
    │   │   │                        ``code``, one of :data:`REJECTIONS`, says why
    │   │   └── RateLimited          429 rate_limited (with Retry-After)
    │   └── CloudApiError            the Cloud-API-compatible routes refuse (Meta's code and
    │                                error shape; every other GatewayError on those routes
    │                                is answered in Meta's shape too)
    ├── StoreUnavailable             Redis failed or timed out (raised by ``store.py``):
    │                                webhooks degrade (publish without dedupe), the send
    │                                API turns it into Unavailable (503)
    ├── UpstreamError                the tenant service or the state-manager did not answer:
    │                                the services turn it into Unavailable (503)
    └── InvalidPhoneNumber           (flowchat_platform.phones) the send API's ``to``: the
                                     send service turns it into SendRejected
                                     ``invalid_phone_number`` (422, field ``to``)

Only :class:`GatewayError` s reach the HTTP edge. Malformed pieces of a correctly signed
webhook are not errors: they are parked on ``flowchat.poison`` and the webhook is
answered 200 (a 4xx would make Meta retry the same bytes for a week).
"""

from __future__ import annotations

from typing import Any, Literal

from flowchat_platform.errors import FlowchatError

Rejection = Literal[
    "invalid_idempotency_key",
    "account_not_found",
    "message_not_found",
    "account_disabled",
    "invalid_phone_number",
    "idempotency_conflict",
    "request_in_progress",
    "rate_limited",
]

#: Why a send or query request is refused → the HTTP status it is answered with.
REJECTIONS: dict[Rejection, int] = {
    "invalid_idempotency_key": 400,  # missing, blank or longer than 128 characters
    "account_not_found": 404,  # unknown, or another tenant's
    "message_not_found": 404,  # unknown, another tenant's, or not recorded yet
    "account_disabled": 409,  # the account or its tenant is not active
    "invalid_phone_number": 422,
    "idempotency_conflict": 409,  # same Idempotency-Key, different body
    "request_in_progress": 409,  # same key, the first request still publishing
    "rate_limited": 429,
}


class GatewayError(FlowchatError):
    """Base of the gateway's exceptions."""


class InvalidSignature(GatewayError):
    def __init__(self, message: str, *, provider: str) -> None:
        super().__init__(message)
        self.provider = provider


class UnknownAccount(GatewayError):
    def __init__(self, message: str, *, account_id: str) -> None:
        super().__init__(message)
        self.account_id = account_id


class Unavailable(GatewayError):
    def __init__(self, message: str, *, dependency: str) -> None:
        super().__init__(message)
        self.dependency = dependency


class InFlight(GatewayError):
    def __init__(self, message: str, *, events: int) -> None:
        super().__init__(message)
        self.events = events


class SendRejected(GatewayError):
    """A request refused for ``code``; ``field`` names the part of it at fault."""

    def __init__(self, code: Rejection, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    @property
    def status(self) -> int:
        return REJECTIONS[self.code]


class RateLimited(SendRejected):
    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__("rate_limited", message)
        self.retry_after_s = retry_after_s


class CloudApiError(GatewayError):
    """A refusal of the Cloud-API-compatible routes, answered in Meta's error shape
    (``{"error": {"message", "type", "code", "error_data", "fbtrace_id"}}``) with one of
    :class:`flowchat_contracts.meta_codes.MetaCode` (100 invalid parameter, 190 bad
    token, 10 permission, …) and Meta's HTTP status for it."""

    def __init__(
        self, code: int, details: str, *, status: int = 400, body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"({code}) {details}")
        self.code = code
        self.details = details
        self.status = status
        #: Meta's own error body, passed through as Meta answered it.
        self.body = body
