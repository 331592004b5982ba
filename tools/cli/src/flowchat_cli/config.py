"""Where the services are and which credentials to use.

Read from the environment, else from ``.run/stack.env`` (what ``make up`` writes; found
from the current directory upwards, or named by ``FLOWCHAT_STACK_ENV``); the environment
wins. Defaults are the local stack's ports.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flowchat_cli.errors import ConfigError

#: service → (environment variable, default URL)
SERVICES: dict[str, tuple[str, str]] = {
    "gateway": ("FLOWCHAT_GATEWAY_URL", "http://127.0.0.1:8700"),
    "tenant": ("FLOWCHAT_TENANT_URL", "http://127.0.0.1:8701"),
    "conversation": ("FLOWCHAT_CONVERSATION_URL", "http://127.0.0.1:8702"),
    "sender": ("FLOWCHAT_SENDER_URL", "http://127.0.0.1:8703"),
    "state-manager": ("FLOWCHAT_STATE_URL", "http://127.0.0.1:8704"),
    "sandbox": ("FLOWCHAT_SANDBOX_URL", "http://127.0.0.1:8705"),
    "relay": ("FLOWCHAT_RELAY_URL", "http://127.0.0.1:8706"),
    "inbox": ("FLOWCHAT_INBOX_URL", "http://127.0.0.1:8707"),
}
#: credential → (environment variable, what it is)
CREDENTIALS: dict[str, tuple[str, str]] = {
    "operator": ("FLOWCHAT_OPERATOR_KEY", "the operator key (tenants, numbers, keys, users)"),
    "service": ("FLOWCHAT_SERVICE_TOKEN", "the service token (DLQ; any tenant's data)"),
    "api_key": ("FLOWCHAT_API_KEY", "a tenant API key fc_… (sends; its own tenant's data)"),
}
TENANT_ENV = "FLOWCHAT_TENANT_ID"


def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=value`` and ``export KEY=value`` lines (shell quoting allowed, # comments)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            continue
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value]
        values[key.strip()] = parts[0] if parts else ""
    return values


def find_stack_env(start: Path, environ: Mapping[str, str]) -> Path | None:
    named = environ.get("FLOWCHAT_STACK_ENV")
    if named:
        return Path(named)
    for folder in (start, *start.parents):
        candidate = folder / ".run" / "stack.env"
        if candidate.is_file():
            return candidate
    return None


@dataclass
class Config:
    values: dict[str, str] = field(default_factory=dict)
    source: Path | None = None

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Config:
        env = dict(os.environ if environ is None else environ)
        path = find_stack_env(cwd or Path.cwd(), env)
        values: dict[str, str] = {}
        if path is not None and path.is_file():
            values.update(parse_env_file(path.read_text()))
        values.update({k: v for k, v in env.items() if k.startswith("FLOWCHAT_")})
        return cls(values, path if path is not None and path.is_file() else None)

    def url(self, service: str) -> str:
        variable, default = SERVICES[service]
        return self.values.get(variable, default).rstrip("/")

    def credential(self, name: str) -> str:
        variable, what = CREDENTIALS[name]
        value = self.values.get(variable)
        if not value:
            raise ConfigError(f"{variable} is not set ({what}); export it or run `make up`")
        return value

    def has(self, name: str) -> bool:
        return bool(self.values.get(CREDENTIALS[name][0]))

    def tenant(self, given: str | None) -> str:
        tenant = given or self.values.get(TENANT_ENV)
        if not tenant:
            raise ConfigError(f"a tenant is needed: --tenant or {TENANT_ENV}")
        return tenant
