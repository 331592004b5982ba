"""Exceptions of the tenant service (one handler in ``app.py`` maps them to HTTP answers).

::

    FlowchatError                            (flowchat_platform.errors)
    └── TenantError(message)                 base of the service's domain errors: code, message
        ├── NotFound(resource, id)           unknown, or another tenant's (→ 404, same answer)
        ├── Conflict(field)                  a unique value already registered (→ 409)
        ├── InvalidInput(field, code)        the schema accepts it, the domain does not (→ 422)
        │   └── InvalidCredentials(field)    the provider refused the token (Graph 190 / HTTP 401)
        ├── Forbidden(reason)                authenticated, but not allowed to do this (→ 403)
        ├── Unauthenticated(reason)          wrong e-mail or password, dead session or token (→ 401)
        ├── TooManyAttempts(retry_after_s)   login locked after repeated failures (→ 429)
        ├── ProviderError(status)            the provider answered badly or not at all (→ 502)
        └── SecretUnavailable(account)       a stored secret does not decrypt with any key (→ 500)

The CLI answers every :class:`TenantError` with exit status 1 (``refused: code: message``).

Messages never carry secret values: only field names and identifiers.
"""

from __future__ import annotations

from flowchat_platform.errors import FlowchatError


class TenantError(FlowchatError):
    """Base of the tenant service's domain errors."""

    code = "tenant_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(TenantError):
    code = "not_found"

    def __init__(self, resource: str, identifier: str) -> None:
        super().__init__(f"{resource} {identifier!r} not found")
        self.resource = resource
        self.identifier = identifier


class Conflict(TenantError):
    code = "conflict"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidInput(TenantError):
    code = "invalid_input"

    def __init__(self, message: str, *, field: str, code: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        if code is not None:
            self.code = code


class InvalidCredentials(InvalidInput):
    code = "invalid_credentials"

    def __init__(self, message: str, *, field: str = "access_token") -> None:
        super().__init__(message, field=field, code="invalid_credentials")


class Forbidden(TenantError):
    code = "forbidden"


class Unauthenticated(TenantError):
    code = "unauthorized"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class TooManyAttempts(TenantError):
    """Logins for this e-mail or from this address are locked for ``retry_after_s``."""

    code = "too_many_attempts"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("too many failed logins; try again later")
        self.retry_after_s = retry_after_s


class ProviderError(TenantError):
    code = "provider_unavailable"

    def __init__(
        self, message: str, *, status: int | None = None, provider_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.provider_code = provider_code


class SecretUnavailable(TenantError):
    """A ciphertext no configured key opens: ``FLOWCHAT_TENANT_ENCRYPTION_KEYS`` lost a key."""

    code = "secret_unavailable"

    def __init__(self, account_id: str) -> None:
        super().__init__(
            f"a secret of account {account_id!r} does not decrypt with the configured keys"
        )
        self.account_id = account_id
