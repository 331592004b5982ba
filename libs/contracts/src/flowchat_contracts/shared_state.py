"""Redis keys that one service writes and another reads (a contract like the queues).

- ``optout_key(tenant_id)``: a Redis **set** of every id of the tenant's customers who
  opted out of marketing: the phone number (``wa_id``, digits only) and the BSUID, each
  a member, so a send to either id of the person is refused. The conversation service
  owns contacts and keeps this set in step with them (STOP keyword, the
  ``user_preferences`` webhook, error 131050, API, CSV import; rebuilt from PostgreSQL
  at start). The sender refuses a
  ``marketing`` command to a member before any provider call.
"""

from __future__ import annotations

__all__ = ["optout_key"]


def optout_key(tenant_id: str) -> str:
    """The Redis set of customer ids (``wa_id`` and BSUID) opted out of marketing."""
    return f"flowchat:optout:{tenant_id}"
