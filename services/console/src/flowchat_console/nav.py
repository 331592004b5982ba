"""What each role may see and do, in one place: :func:`can` and the menu.

The services enforce every right themselves (the console forwards the user's token); the
console only hides what a role cannot do, so a viewer never sees a button that would be
refused. Roles: ``operator`` (platform staff), a tenant's ``owner``, ``admin``, ``agent``,
``viewer``.

Actions are ``<area>.<verb>``: ``read`` (see), ``act`` (day-to-day work: answer, claim),
``write`` (change the tenant's set-up: contacts, campaigns, catalog), ``manage``
(people, keys, endpoints, numbers, anyone's conversation).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

TENANT_ROLES = ("owner", "admin", "agent", "viewer")
ALL = frozenset({"operator", *TENANT_ROLES})
STAFF = frozenset({"owner", "admin", "agent", "viewer"})
ACTORS = frozenset({"owner", "admin", "agent", "operator"})
ADMINS = frozenset({"owner", "admin", "operator"})
TENANT_ADMINS = frozenset({"owner", "admin"})
OPERATORS = frozenset({"operator"})

#: action → the roles allowed it (the conversation service's tenant API, behind
#: contacts, campaigns, catalog and orders, admits owners, admins and operators only)
RIGHTS: dict[str, frozenset[str]] = {
    "inbox.read": STAFF,
    "inbox.act": frozenset({"owner", "admin", "agent"}),
    "inbox.manage": TENANT_ADMINS,
    "conversations.read": STAFF,
    "contacts.read": ADMINS,
    "contacts.write": TENANT_ADMINS,
    "campaigns.read": ADMINS,
    "campaigns.write": TENANT_ADMINS,
    "catalog.read": ADMINS,
    "catalog.write": TENANT_ADMINS,
    "orders.act": ADMINS,
    "numbers.read": STAFF,
    "numbers.manage": TENANT_ADMINS,
    "templates.read": STAFF,
    "integrations.read": TENANT_ADMINS,
    "integrations.manage": TENANT_ADMINS,
    "team.read": TENANT_ADMINS,
    "team.manage": TENANT_ADMINS,
    "audit.read": ADMINS,
    "operator.read": OPERATORS,
    "operator.manage": OPERATORS,
}


class HasRole(Protocol):
    @property
    def role(self) -> str: ...


def can(user: HasRole | None, action: str) -> bool:
    """Whether ``user`` may do ``action`` (an unknown action: nobody)."""
    if user is None:
        return False
    return user.role in RIGHTS.get(action, frozenset())


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str
    action: str


#: The menu, in order. An entry shows when the user may do its action and its page is
#: served (a page module in ``pages.PAGE_MODULES`` routes its path).
MENU: tuple[NavItem, ...] = (
    NavItem("Inbox", "/inbox", "inbox.read"),
    NavItem("Conversations", "/conversations", "conversations.read"),
    NavItem("Contacts", "/contacts", "contacts.read"),
    NavItem("Campaigns", "/campaigns", "campaigns.read"),
    NavItem("Catalog", "/catalog", "catalog.read"),
    NavItem("Numbers", "/numbers", "numbers.read"),
    NavItem("Integrations", "/integrations", "integrations.read"),
    NavItem("Team", "/team", "team.read"),
    NavItem("Tenants", "/operator", "operator.read"),
    NavItem("Dead letters", "/operator/dlq", "operator.read"),
    NavItem("Health", "/operator/health", "operator.read"),
)


def menu(user: HasRole | None, served: Iterable[str]) -> list[NavItem]:
    """The entries ``user`` sees among the paths the app serves."""
    paths = set(served)
    return [item for item in MENU if item.path in paths and can(user, item.action)]


def home(user: HasRole) -> str:
    """Where a user lands after signing in."""
    return "/operator" if user.role == "operator" else "/inbox"
