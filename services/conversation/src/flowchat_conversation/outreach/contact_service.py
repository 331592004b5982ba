"""The contacts service: upserts, CSV imports, searches and marketing preferences,
each change mirrored to the opt-out set the sender reads (no I/O here: the store and the
mirror come in through the ports in :mod:`~flowchat_conversation.outreach.ports`; the
values and the CSV rules are in :mod:`~flowchat_conversation.outreach.contacts`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from flowchat_contracts import CustomerIdentity
from flowchat_conversation.customers import identity_for
from flowchat_conversation.errors import OutreachError, OutreachNotFound
from flowchat_conversation.outreach.contacts import (
    Contact,
    ContactImport,
    ContactIn,
    ContactPatch,
    NewContact,
    OptInSource,
    Segment,
    UpsertCounts,
    parse_contacts_csv,
    to_new_contact,
)
from flowchat_conversation.outreach.ports import ContactStore, OptOutMirror

#: Contacts whose state is read back and mirrored per round trip.
MIRROR_CHUNK = 5000


@dataclass
class ContactsService:
    store: ContactStore
    #: The region of numbers written without ``+`` (None: they must be international).
    default_region: str | None = None
    optouts: OptOutMirror | None = None

    async def _mirror(self, tenant_id: str, wa_ids: Sequence[str]) -> None:
        """Copy the marketing state PostgreSQL now holds for the people ``wa_ids`` name
        to the opt-out set, under every id of each (phone number and BSUID)."""
        if self.optouts is None or not wa_ids:
            return
        for i in range(0, len(wa_ids), MIRROR_CHUNK):
            chunk = wa_ids[i : i + MIRROR_CHUNK]
            states = await self.store.marketing_states(tenant_id, chunk)
            await self.optouts.mirror(tenant_id, states)

    async def upsert(self, tenant_id: str, items: list[ContactIn]) -> UpsertCounts:
        contacts: list[NewContact] = []
        for n, item in enumerate(items):
            try:
                contacts.append(to_new_contact(item, self.default_region))
            except ValueError as exc:
                raise OutreachError(f"item {n}: {exc}", code="invalid_phone") from exc
        if len({c.wa_id for c in contacts}) != len(contacts):
            raise OutreachError(
                "the same phone number or BSUID appears twice", code="duplicate_phone"
            )
        counts = await self.store.upsert_contacts(tenant_id, contacts, source="api")
        await self._mirror(tenant_id, [i for c in contacts for i in c.identity.ids])
        return counts

    async def import_csv(self, tenant_id: str, text: str) -> ContactImport:
        good, rejected = parse_contacts_csv(text, self.default_region)
        counts = UpsertCounts()
        if good:
            counts = await self.store.upsert_contacts(
                tenant_id, [c for _, c in good], source="import"
            )
            await self._mirror(tenant_id, [i for _, c in good for i in c.identity.ids])
        return ContactImport(
            received=len(good) + len(rejected),
            created=counts.created,
            updated=counts.updated,
            opt_out_kept=counts.opt_out_kept,
            rejected=rejected,
        )

    async def get(self, tenant_id: str, contact_id: int) -> Contact:
        contact = await self.store.get_contact(tenant_id, contact_id)
        if contact is None:
            raise OutreachNotFound("contact", contact_id)
        return contact

    async def search(
        self, tenant_id: str, segment: Segment, *, limit: int = 100, after_id: int = 0
    ) -> list[Contact]:
        return await self.store.search_contacts(tenant_id, segment, limit=limit, after_id=after_id)

    async def count(self, tenant_id: str, segment: Segment) -> int:
        return await self.store.count_contacts(tenant_id, segment)

    async def patch(self, tenant_id: str, contact_id: int, patch: ContactPatch) -> Contact:
        contact = await self.store.patch_contact(tenant_id, contact_id, patch)
        if contact is None:
            raise OutreachNotFound("contact", contact_id)
        return contact

    async def set_preference(
        self,
        tenant_id: str,
        customer: CustomerIdentity | str,
        opt_in: bool,
        *,
        source: OptInSource,
        at: datetime,
    ) -> bool:
        """Record a preference of the person ``customer`` names (an identity, or one id:
        a phone number or a BSUID); False when a newer one was recorded already. The
        opt-out set follows what PostgreSQL holds afterwards, under every id of the
        person (a redelivered event mirrors again)."""
        identity = identity_for(customer) if isinstance(customer, str) else customer
        applied = await self.store.set_marketing_opt_in(
            tenant_id, identity, opt_in, source=source, at=at
        )
        await self._mirror(tenant_id, list(identity.ids))
        return applied
