"""The gateway's own exceptions; the HTTP edge maps each to one status and code.

::

    GatewayError
    ├── InvalidSignature         401 invalid_signature: nothing is published
    ├── UnknownAccount           404 not_found: a Twilio webhook for an account FlowChat lacks
    ├── Unavailable              503 unavailable: broker, tenant service, state-manager or
    │                            Redis (send API) cannot answer; the caller retries (Meta
    │                            does, for 7 days)
    ├── StoreUnavailable         Redis failed or timed out (webhooks degrade, send API → 503)
    └── SendRejected             the send API refuses the request (4xx)
        ├── AccountNotFound      404 account_not_found (unknown or another tenant's)
        ├── MessageNotFound      404 message_not_found (unknown, another tenant's, not yet
        │                        recorded)
        ├── AccountUnusable      409 account_disabled
        ├── InvalidPhoneNumber   422 invalid_phone_number
        ├── IdempotencyConflict  409 idempotency_conflict (same key, different body)
        ├── RequestInProgress    409 request_in_progress (same key, first still publishing)
        └── RateLimited          429 rate_limited (with Retry-After)

Malformed pieces of a correctly signed webhook are not errors: they are parked on
``flowchat.poison`` and the webhook is answered 200 (a 4xx would make Meta retry
the same bytes for a week).
"""

from __future__ import annotations


class GatewayError(Exception):
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


class StoreUnavailable(GatewayError):
    """Redis did not answer (in time)."""


class SendRejected(GatewayError):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class AccountNotFound(SendRejected):
    status = 404
    code = "account_not_found"


class MessageNotFound(SendRejected):
    status = 404
    code = "message_not_found"


class AccountUnusable(SendRejected):
    status = 409
    code = "account_disabled"


class InvalidPhoneNumber(SendRejected):
    status = 422
    code = "invalid_phone_number"


class IdempotencyConflict(SendRejected):
    status = 409
    code = "idempotency_conflict"


class RequestInProgress(SendRejected):
    status = 409
    code = "request_in_progress"


class RateLimited(SendRejected):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
