"""Redis keys that one service writes and another reads (a contract like the queues).

- ``optout_key(tenant_id)``: a Redis **set** of every id of the tenant's customers who
  opted out of marketing: the phone number (``wa_id``, digits only) and the BSUID, each
  a member, so a send to either id of the person is refused. The conversation service
  owns contacts and keeps this set in step with them (STOP keyword, the
  ``user_preferences`` webhook, error 131050, API, CSV import; rebuilt from PostgreSQL
  at start). The sender refuses a
  ``marketing`` command to a member before any provider call.
- ``customer_window_key(tenant_id, account_id, customer_id)``: the Unix seconds of the
  customer's last inbound message (never moves back, TTL 72 h), written by the gateway,
  read by the sender's claim for the 24 h customer-service window.

Redis Cluster: every key a send touches in one Lua script (its idempotency claim, the
customer's window, the tenant's opt-out set, the number's rate-limit slots) carries the
tenant's hash tag (:func:`tenant_tag`, ``{<tenant_id>}``), so the script touches one hash
slot. The tenant is the smallest unit that holds them all: the opt-out set is per tenant,
and a tenant's numbers and customers are its own. See docs/architecture.md ("Redis keys").
"""

from __future__ import annotations

__all__ = ["customer_window_key", "optout_key", "optout_tenant", "tenant_tag"]

_OPTOUT_PREFIX = "flowchat:optout:"


def tenant_tag(tenant_id: str) -> str:
    """The Redis Cluster hash tag of a tenant's keys: they all hash to one slot."""
    return "{" + tenant_id + "}"


def optout_key(tenant_id: str) -> str:
    """The Redis set of customer ids (``wa_id`` and BSUID) opted out of marketing."""
    return f"{_OPTOUT_PREFIX}{tenant_tag(tenant_id)}"


def optout_tenant(key: str) -> str | None:
    """The tenant of an :func:`optout_key` (None: not one, e.g. a pre-tag key)."""
    if not key.startswith(_OPTOUT_PREFIX + "{") or not key.endswith("}"):
        return None
    return key[len(_OPTOUT_PREFIX) + 1 : -1]


def customer_window_key(tenant_id: str, account_id: str, customer_id: str) -> str:
    """The customer's last inbound time (Unix seconds) at one of the tenant's numbers;
    ``customer_id`` is the ``wa_id`` in digits (no '+': callers strip it) or the BSUID."""
    return f"flowchat:csw:{tenant_tag(tenant_id)}:{account_id}:{customer_id}"
