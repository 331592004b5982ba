"""Redis keys that one service writes and another reads (a contract like the queues).

- ``optout_key(tenant_id)``: a Redis **set** of the tenant's customers (``wa_id``, digits
  only) who opted out of marketing. The conversation service owns contacts and keeps
  this set in step with them (STOP keyword, ``user_marketing_preferences`` webhook,
  error 131050, API, CSV import; rebuilt from PostgreSQL at start). The sender refuses a
  ``marketing`` command to a member before any provider call.
"""

from __future__ import annotations

__all__ = ["optout_key"]


def optout_key(tenant_id: str) -> str:
    """The Redis set of ``wa_id`` values opted out of marketing for ``tenant_id``."""
    return f"flowchat:optout:{tenant_id}"
