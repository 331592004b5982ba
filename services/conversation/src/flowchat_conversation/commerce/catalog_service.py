"""The tenant side of the catalog: bot settings, products, CSV import (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flowchat_conversation import metrics
from flowchat_conversation.commerce.catalog import ParsedCsv, RejectedRow, parse_csv
from flowchat_conversation.commerce.domain import BotSettings, Product, ProductIn
from flowchat_conversation.commerce.domain import resolve_product as _resolve
from flowchat_conversation.commerce.ports import CatalogStore
from flowchat_conversation.errors import CatalogError


@dataclass(frozen=True)
class ImportReport:
    received: int
    created: int
    updated: int
    rejected: list[RejectedRow]


@dataclass
class CatalogService:
    store: CatalogStore

    async def settings(self, tenant_id: str) -> BotSettings:
        return await self.store.get_settings(tenant_id) or BotSettings()

    async def put_settings(self, tenant_id: str, settings: BotSettings) -> BotSettings:
        await self.store.put_settings(tenant_id, settings)
        return settings

    async def add_products(
        self, tenant_id: str, items: Sequence[ProductIn]
    ) -> tuple[list[Product], int, int]:
        """Create or replace products by sku; every item must be valid (else nothing)."""
        settings = await self.settings(tenant_id)
        products: list[Product] = []
        seen: set[str] = set()
        for n, item in enumerate(items):
            if item.sku in seen:
                raise CatalogError(f"item {n}: duplicate sku {item.sku}", code="duplicate_sku")
            seen.add(item.sku)
            try:
                products.append(_resolve(item, settings.currency))
            except ValueError as exc:
                raise CatalogError(f"item {n}: {exc}") from exc
        created, updated = await self.store.upsert_products(tenant_id, products)
        return products, created, updated

    async def list_products(
        self,
        tenant_id: str,
        *,
        category: str | None = None,
        limit: int = 100,
        after: tuple[str, str, str] | None = None,
    ) -> list[Product]:
        """By category, name and SKU; ``after``: the (category, name, sku) of the last seen."""
        return await self.store.list_products(
            tenant_id, category=category, limit=limit, after=after
        )

    async def import_csv(self, tenant_id: str, text: str) -> ImportReport:
        settings = await self.settings(tenant_id)
        parsed: ParsedCsv = parse_csv(text, default_currency=settings.currency)
        created = updated = 0
        if parsed.products:
            created, updated = await self.store.upsert_products(
                tenant_id, [p for _, p in parsed.products]
            )
        metrics.IMPORT_ROWS.labels("accepted").inc(len(parsed.products))
        metrics.IMPORT_ROWS.labels("rejected").inc(len(parsed.rejected))
        return ImportReport(
            received=len(parsed.products) + len(parsed.rejected),
            created=created,
            updated=updated,
            rejected=parsed.rejected,
        )
