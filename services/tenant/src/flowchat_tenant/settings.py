"""Settings of the tenant service (env prefix ``FLOWCHAT_TENANT_``).

Unprefixed stack variables: ``DATABASE_URL``, ``FLOWCHAT_SERVICE_TOKEN`` (bearer of
the internal API), ``FLOWCHAT_OPERATOR_KEY`` (bearer that manages every tenant).
``FLOWCHAT_TENANT_ENCRYPTION_KEYS`` holds comma-separated Fernet keys: the first
encrypts, all of them decrypt (so a rotation can run while old rows remain).
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from flowchat_platform.crypto import SecretBox, secret_box
from flowchat_platform.settings import ServiceSettings, check_secret, infra

ENCRYPTION_KEYS_VAR = "FLOWCHAT_TENANT_ENCRYPTION_KEYS"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWCHAT_TENANT_", extra="ignore", frozen=True)

    http_port: int = 8701
    database_url: str = infra("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/flowchat")
    service_token: SecretStr | None = infra("FLOWCHAT_SERVICE_TOKEN", None)
    operator_key: SecretStr | None = infra("FLOWCHAT_OPERATOR_KEY", None)
    encryption_keys: SecretStr | None = None
    #: Graph API used to validate numbers and read their health (the sandbox locally).
    graph_url: str = "https://graph.facebook.com"
    graph_version: str = "v23.0"
    graph_timeout_s: float = 10.0
    #: Registering a Meta number reads it from the provider with its token first.
    validate_numbers: bool = True
    #: How often every Meta number's quality rating, throughput and limit are re-read.
    health_refresh_interval_s: float = 3600.0
    #: ``Cache-Control: max-age`` of the internal API's account answers.
    internal_cache_max_age_s: int = 60
    #: Rows per transaction when ``rotate-keys`` re-encrypts secrets.
    rotation_batch_size: int = 200
    db_pool_max_size: int = 10

    # --- users and sessions ---
    #: HMAC key of the access tokens; unset: derived from FLOWCHAT_SERVICE_TOKEN.
    token_key: SecretStr | None = None
    access_token_ttl_s: int = 900
    session_ttl_s: float = 14 * 86400.0
    invitation_ttl_s: float = 7 * 86400.0
    reset_ttl_s: float = 86400.0
    password_min_length: int = 12
    #: argon2id cost (OWASP minimum by default: t=2, m=19 MiB, p=1)
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19_456
    lockout_user_threshold: int = 5
    lockout_ip_threshold: int = 20
    lockout_base_s: float = 30.0
    lockout_max_s: float = 3600.0
    lockout_window_s: float = 900.0
    #: take the client address from X-Forwarded-For (only behind a proxy that sets it)
    trust_forwarded_for: bool = False
    #: ``Cache-Control: max-age`` of the internal user-token answers (a disabled user's
    #: token still works that long in the services that cache it; never in this one)
    user_cache_max_age_s: int = 5
    #: links in invitation and reset e-mails point here
    console_url: str = "http://127.0.0.1:8080"
    #: the development mail sink appends here too (JSON lines); unset: memory only
    mail_outbox_path: str | None = None
    #: the cookie carrying the console session
    session_cookie_secure: bool = True
    #: how often quiet login counters and long-ended sessions and tokens are deleted
    identity_purge_interval_s: float = 3600.0

    def check_secrets(self) -> None:
        check_secret(self.service_token, "FLOWCHAT_SERVICE_TOKEN")
        check_secret(self.operator_key, "FLOWCHAT_OPERATOR_KEY")
        if self.token_key is not None:
            check_secret(self.token_key, "FLOWCHAT_TENANT_TOKEN_KEY")
        self.secret_box()

    def access_token_key(self) -> bytes:
        """The access tokens' HMAC key: ``FLOWCHAT_TENANT_TOKEN_KEY``, or one derived from
        the service token (so a stack needs no new secret)."""
        if self.token_key is not None:
            check_secret(self.token_key, "FLOWCHAT_TENANT_TOKEN_KEY")
            return hashlib.sha256(self.token_key.get_secret_value().encode()).digest()
        base = self.service_token.get_secret_value() if self.service_token else ""
        return hmac.new(base.encode(), b"flowchat-user-access-tokens", hashlib.sha256).digest()

    def secret_box(self) -> SecretBox:
        """The keyring built from ``FLOWCHAT_TENANT_ENCRYPTION_KEYS`` (raises if invalid)."""
        return secret_box(self.encryption_keys, ENCRYPTION_KEYS_VAR)
