"""The payment provider over HTTP (aiohttp): the sandbox's payment emulator's API,
``POST {base}/v1/payment_links`` → ``{"id", "url"}`` (idempotent by ``invoice_id``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp

from flowchat_conversation.commerce.payments import PaymentLink
from flowchat_conversation.errors import ProviderRefused, ProviderUnavailable


class HttpPaymentProvider:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 10.0,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def create_link(
        self,
        *,
        tenant_id: str,
        invoice_id: str,
        amount: Decimal,
        currency: str,
        description: str,
    ) -> PaymentLink:
        payload = {
            "invoice_id": invoice_id,
            "amount": str(amount),
            "currency": currency,
            "description": description,
            "metadata": {"tenant_id": tenant_id},
        }
        try:
            async with self._session.post(
                f"{self._base}/v1/payment_links",
                json=payload,
                headers={"Authorization": f"Bearer {self._key}"},
                timeout=self._timeout,
            ) as r:
                body: Any = await r.json(content_type=None)
                status = r.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ProviderUnavailable("cannot reach the payment provider") from exc
        if status not in (200, 201) or not isinstance(body, dict):
            raise ProviderRefused(f"the payment provider refused the link ({status})")
        return PaymentLink(link_id=str(body["id"]), url=str(body["url"]))
