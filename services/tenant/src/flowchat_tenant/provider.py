"""The WhatsApp Cloud API adapter of the tenant service (aiohttp): read a number, its profile.

:class:`GraphProvider` implements :class:`~flowchat_tenant.ports.NumberProvider` over
one shared aiohttp session (Meta's Graph API, or the sandbox locally), and
:func:`raise_for_graph_error` maps Graph's error answers to the service's errors.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from flowchat_contracts import meta_codes
from flowchat_tenant.errors import InvalidCredentials, InvalidInput, ProviderError
from flowchat_tenant.ports import PhoneNumberInfo

PHONE_FIELDS = "display_phone_number,verified_name,quality_rating,throughput,messaging_limit_tier"
#: Graph error codes meaning the access token is invalid, expired or lacks permission.
TOKEN_ERROR_CODES = meta_codes.TOKEN


def raise_for_graph_error(status: int, body: Any) -> None:
    """Map a Graph error answer to the service's errors (never echoing the token)."""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    if status == 401 or code in TOKEN_ERROR_CODES:
        raise InvalidCredentials(
            f"the provider refused the access token (code {code}): {message}".strip()
        )
    if status == 404 or code in (100, 803):
        raise InvalidInput(
            f"the provider does not know this phone number id (code {code}): {message}",
            field="phone_number_id",
            code="unknown_phone_number",
        )
    raise ProviderError(
        f"the provider answered HTTP {status} (code {code}): {message}",
        status=status,
        provider_code=code if isinstance(code, int) else None,
    )


class GraphProvider:
    """Meta's Graph API (or the sandbox) over one shared aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        version: str,
        timeout_s: float = 10.0,
    ) -> None:
        self._session = session
        self._base = f"{base_url.rstrip('/')}/{version}"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def phone_number(self, phone_number_id: str, access_token: str) -> PhoneNumberInfo:
        body = await self._call(
            "GET", f"/{phone_number_id}", access_token, params={"fields": PHONE_FIELDS}
        )
        return PhoneNumberInfo.from_graph(phone_number_id, body)

    async def business_profile(self, phone_number_id: str, access_token: str) -> dict[str, Any]:
        return await self._call(
            "GET", f"/{phone_number_id}/whatsapp_business_profile", access_token
        )

    async def update_business_profile(
        self, phone_number_id: str, access_token: str, profile: dict[str, Any]
    ) -> dict[str, Any]:
        payload = {"messaging_product": "whatsapp", **profile}
        return await self._call(
            "POST", f"/{phone_number_id}/whatsapp_business_profile", access_token, json=payload
        )

    async def _call(
        self,
        method: str,
        path: str,
        access_token: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            async with self._session.request(
                method,
                self._base + path,
                params=params,
                json=json,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=self._timeout,
            ) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                if response.status >= 400:
                    raise_for_graph_error(response.status, body)
                if not isinstance(body, dict):
                    raise ProviderError("the provider answered with no JSON object", status=200)
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError(f"the provider is unreachable: {type(exc).__name__}") from exc
