"""Export: everything FlowChat holds about one customer of one tenant, as one JSON
document (GDPR art. 15 / 20, LGPD, DPDP access requests).

The conversation service resolves the id asked for (a phone number or a BSUID) to every
id linked to the customer, puts in its own rows (contacts, aliases, orders with their
lines, invoices, payments and events, campaign sends, reminders, hand-offs) with a
signed link to each invoice's PDF, and asks the other services that hold customer data
through their APIs: the inbox (threads and every message), the state-manager (message
records), the relay (the webhook events naming the customer, as delivered to the
tenant's endpoints, with each delivery's status). A service that does not answer is
named in ``unavailable`` and the document is still given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from flowchat_conversation.privacy.ports import PeerExport, PrivacyStore
from flowchat_platform.logs import get_logger
from flowchat_platform.privacy import normalise_id

log = get_logger(__name__)


class ExportService:
    def __init__(
        self,
        store: PrivacyStore,
        peers: Sequence[PeerExport],
        *,
        pdf_link: Callable[[str], str] | None = None,
    ) -> None:
        self.store = store
        self.peers = tuple(peers)
        self._pdf_link = pdf_link

    async def export(self, tenant_id: str, customer_id: str) -> dict[str, Any]:
        wanted = normalise_id(customer_id)
        ids = sorted({wanted, *await self.store.linked_ids(tenant_id, wanted)})
        own = await self.store.customer_data(tenant_id, ids)
        for order in own.get("orders", []):
            invoice = order.get("invoice")
            if invoice and self._pdf_link is not None:
                invoice["pdf_url"] = self._pdf_link(str(invoice["invoice_id"]))
        services: dict[str, Any] = {"conversation": own}
        unavailable: list[str] = []
        for peer in self.peers:
            try:
                services[peer.service] = await peer.export(tenant_id, ids)
            except Exception as exc:  # noqa: BLE001 - one service down: say so, give the rest
                log.warning("export: a service did not answer", peer=peer.service, error=repr(exc))
                unavailable.append(peer.service)
        return {
            "tenant_id": tenant_id,
            "customer_id": wanted,
            "identities": ids,
            "generated_at": datetime.now(UTC).isoformat(),
            "services": services,
            "unavailable": unavailable,
        }
