"""The commerce HTTP API: bot settings and the catalog (:mod:`.catalog`), orders,
payments, hand-off release and the invoice PDF download (:mod:`.orders`), invoices,
discount codes, payment links and the provider's webhook (:mod:`.invoices`)."""

from __future__ import annotations

from fastapi import APIRouter

from flowchat_conversation.commerce.routes import catalog, invoices, orders

ROUTERS: tuple[APIRouter, ...] = (
    catalog.router,
    orders.router,
    orders.public,
    invoices.router,
    invoices.public,
)
