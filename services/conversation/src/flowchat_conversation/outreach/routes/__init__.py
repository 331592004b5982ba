"""The outreach HTTP API: contacts (:mod:`.contacts`), campaigns (:mod:`.campaigns`)
and reminders (:mod:`.reminders`).

Auth as every tenant route (:data:`~flowchat_conversation.deps.TenantAdmin`): the
service token, or a tenant API key with the ``admin`` scope for its own tenant only.
"""

from __future__ import annotations

from fastapi import APIRouter

from flowchat_conversation.outreach.routes import campaigns, contacts, reminders

ROUTERS: tuple[APIRouter, ...] = (contacts.router, campaigns.router, reminders.router)
