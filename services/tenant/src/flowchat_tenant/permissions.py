"""Who may do what: the one table of role x action, and the one check (pure, no I/O).

Callers of the public API are :class:`Principal`\\ s: the operator key, an operator
user (platform staff), a tenant user with a role, or a tenant API key (a key with
the ``admin`` scope acts as the ``admin`` role; any other key manages nothing).

::

    action                owner  admin  agent  viewer    (operator: every action, every tenant)
    tenant.read             x      x      x      x
    tenant.update           x      x
    numbers.read            x      x      x      x
    numbers.write           x      x
    keys.read / keys.write  x      x
    users.read              x      x      x      x
    users.write             x      x                     (admins never touch owners)
    users.owners            x                            (invite, change, remove an owner)
    audit.read              x      x
    conversations.read      x      x      x      x       (for the inbox service)
    conversations.reply     x      x      x

:func:`authorize` answers another tenant's resources exactly as unknown ones
(:class:`~flowchat_tenant.errors.NotFound`, 404): a caller cannot learn they exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flowchat_tenant.errors import Forbidden, NotFound

Role = Literal["operator", "owner", "admin", "agent", "viewer"]
TenantRole = Literal["owner", "admin", "agent", "viewer"]
ROLES: tuple[TenantRole, ...] = ("owner", "admin", "agent", "viewer")

_READ = frozenset({"tenant.read", "numbers.read", "users.read", "conversations.read"})
_AGENT = _READ | {"conversations.reply"}
_ADMIN = _AGENT | {
    "tenant.update",
    "numbers.write",
    "keys.read",
    "keys.write",
    "users.write",
    "audit.read",
}
#: The table: role → the actions it may take in its own tenant.
PERMISSIONS: dict[str, frozenset[str]] = {
    "owner": _ADMIN | {"users.owners"},
    "admin": _ADMIN,
    "agent": _AGENT,
    "viewer": _READ,
}
ACTIONS: frozenset[str] = frozenset().union(*PERMISSIONS.values())

ActorType = Literal["operator_key", "user", "api_key", "cli"]


@dataclass(frozen=True)
class Principal:
    """Who calls: the operator (key or user), a tenant user, or a tenant API key.

    ``ip`` and ``user_agent`` say where from (for the audit log).
    """

    operator: bool
    tenant_id: str | None = None
    key_id: str | None = None
    scopes: tuple[str, ...] = ()
    user_id: str | None = None
    role: Role | None = None
    ip: str | None = None
    user_agent: str | None = None
    actor_type: ActorType = "operator_key"
    session_id: str | None = None

    @classmethod
    def the_operator(cls, *, actor_type: ActorType = "operator_key") -> Principal:
        return cls(operator=True, role="operator", actor_type=actor_type)

    @property
    def actor_id(self) -> str | None:
        return self.user_id or self.key_id

    @property
    def effective_role(self) -> str | None:
        """The role whose row of the table applies (an admin key acts as ``admin``)."""
        if self.key_id is not None:
            return "admin" if "admin" in self.scopes else None
        return self.role

    def may(self, action: str) -> bool:
        if self.operator:
            return True
        return action in PERMISSIONS.get(self.effective_role or "", frozenset())


def authorize(principal: Principal, tenant_id: str, action: str) -> None:
    """Operator: any tenant. Others: their own tenant (else 404), and the table (else 403)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")  # a bug: every action is in the table
    if principal.operator:
        return
    if principal.tenant_id != tenant_id:
        raise NotFound("tenant", tenant_id)
    if not principal.may(action):
        if principal.key_id is not None:
            raise Forbidden("this API key lacks the 'admin' scope")
        raise Forbidden(f"the {principal.role} role may not do {action}")


def require_operator(principal: Principal) -> None:
    if not principal.operator:
        raise Forbidden("only the operator may do this")
