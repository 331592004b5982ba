"""Settings base: every service's ``Settings`` subclasses :class:`ServiceSettings`.

Infrastructure URLs use the names ``make up`` writes to ``.run/stack.env``
(``AMQP_URL``, ``REDIS_URL``, ``DATABASE_URL``); a service's own settings use its
prefix (``FLOWCHAT_GATEWAY_…``). Secrets go through :func:`check_secret`, so a
service refuses to start on a missing or placeholder value and names the variable.
"""

from __future__ import annotations

import sys
from typing import Any, Literal, TypeVar

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from flowchat_platform.errors import ConfigurationError

PLACEHOLDERS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "placeholder",
        "todo",
        "xxx",
        "test",
        "default",
        "example",
        "none",
        "null",
    }
)
MIN_SECRET_LENGTH = 16


def infra(name: str, default: Any) -> Any:
    """A field read from an unprefixed stack variable such as ``AMQP_URL``."""
    return Field(default=default, validation_alias=AliasChoices(name))


#: Idle keep-alive of every service's HTTP server (:attr:`ServiceSettings.http_keep_alive_s`).
HTTP_KEEP_ALIVE_S = 75


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = infra("FLOWCHAT_ENV", "development")
    log_level: str = infra("LOG_LEVEL", "INFO")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    amqp_url: str = infra("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    #: Upper bound of one confirmed publish; past it the publish fails (gateway → 503).
    publish_timeout_s: float = 5.0
    shutdown_grace_s: float = 20.0
    #: How long an idle keep-alive HTTP connection stays open (uvicorn's
    #: ``timeout_keep_alive``). Longer than every client's and proxy's own idle expiry
    #: (httpx 5 s, aiohttp 15 s, nginx upstream 60 s, AWS ALB 60 s): the side that
    #: closes an idle connection must be the one that reuses it, or a request sent as
    #: the server closes is lost on a dead socket (uvicorn's default, 5 s, equals
    #: httpx's: the fault suite's memory-alarm scenario got a dropped connection).
    http_keep_alive_s: int = Field(default=HTTP_KEEP_ALIVE_S, ge=1, le=3600)
    #: The keyed blind index of customers' ids (``flowchat_platform.privacy``): erased
    #: customers' suppression entries and pseudonyms. One key for every service; unset,
    #: derived from the service token. Changing it forgets every suppression entry.
    privacy_key: SecretStr | None = infra("FLOWCHAT_PRIVACY_KEY", None)


def check_secret(value: SecretStr | str | None, variable: str) -> None:
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if raw is None or raw.strip().lower() in PLACEHOLDERS or raw.strip().startswith("<"):
        raise ConfigurationError(f"{variable} is missing or a placeholder", variable=variable)
    if len(raw) < MIN_SECRET_LENGTH:
        raise ConfigurationError(
            f"{variable} is too short (at least {MIN_SECRET_LENGTH} characters)", variable=variable
        )


S = TypeVar("S", bound=ServiceSettings)


def _env_name(settings_cls: type[BaseSettings], field: str) -> str:
    info = settings_cls.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    prefix = settings_cls.model_config.get("env_prefix", "")
    return f"{prefix}{field}".upper()


def load_settings(settings_cls: type[S]) -> S:
    """Build the settings or exit with one clear line per bad variable (exit code 2)."""
    try:
        settings = settings_cls()
        validate = getattr(settings, "check_secrets", None)
        if validate is not None:
            validate()
    except ValidationError as exc:
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            sys.stderr.write(
                f"configuration error: {_env_name(settings_cls, field)}: {err['msg']}\n"
            )
        raise SystemExit(2) from None
    except ConfigurationError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        raise SystemExit(2) from None
    return settings
