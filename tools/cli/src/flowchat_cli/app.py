"""The click plumbing every command shares: ``--json`` and ``--field`` on every group and
command (so anywhere on the line), the per-run state (config, API client, output)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from flowchat_cli.client import Api
from flowchat_cli.config import Config
from flowchat_cli.errors import ConfigError
from flowchat_cli.output import Output

F = TypeVar("F", bound=Callable[..., Any])


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value:
            ctx.meta[f"flowchat.{name}"] = value
        return value

    return callback


def _shared_options() -> list[click.Parameter]:
    return [
        click.Option(
            ["--json"],
            is_flag=True,
            expose_value=False,
            callback=_remember("json"),
            help="Print JSON instead of a table (anywhere on the line).",
        ),
        click.Option(
            ["--field"],
            metavar="NAME",
            expose_value=False,
            callback=_remember("field"),
            help="Print only this field (a.b for nested), e.g. for a shell variable.",
        ),
    ]


class Command(click.Command):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_shared_options())


class Group(click.Group):
    command_class = Command

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_shared_options())


Group.group_class = Group


@dataclass
class State:
    """What a command works with; built on first use (``--help`` needs none of it)."""

    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    transport: Any = None
    _api: Api | None = None

    @property
    def config(self) -> Config:
        return self.api.config

    @property
    def api(self) -> Api:
        if self._api is None:
            self._api = Api(Config.load(self.environ), transport=self.transport)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


def state() -> State:
    ctx = click.get_current_context()
    obj = ctx.find_object(State)
    if obj is None:  # pragma: no cover - main() always sets one
        obj = ctx.ensure_object(State)
    return obj


def out() -> Output:
    meta = click.get_current_context().meta
    return Output(as_json=bool(meta.get("flowchat.json")), field=meta.get("flowchat.field"))


def wants_json() -> bool:
    return bool(click.get_current_context().meta.get("flowchat.json"))


def tenant_option(f: F) -> F:
    return click.option(
        "--tenant",
        "tenant",
        metavar="TENANT_ID",
        help="The tenant (default: FLOWCHAT_TENANT_ID).",
    )(f)


def the_tenant(given: str | None) -> str:
    return state().config.tenant(given)


def read_secret(value: str | None, label: str) -> str | None:
    """A secret option: the value, ``env:NAME`` or ``-`` (one line of standard input)."""
    if value is None:
        return None
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ConfigError(f"{label}: environment variable {name} is not set")
        return os.environ[name]
    if value == "-":
        return sys.stdin.readline().rstrip("\r\n") or None
    return value
