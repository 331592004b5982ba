"""Fixtures of the tenant service's tests: settings, a stand-in Graph API, a running app.

The stand-in Graph API imitates the one Meta endpoint the tenant service reads to
validate a number (``GET /{version}/{phone_number_id}``) and the business profile,
with Meta's shapes and error bodies; it runs under uvicorn, so the service's real
aiohttp client talks to it over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from flowchat_platform.testing import eventually, serve
from flowchat_tenant.app import create_app
from flowchat_tenant.settings import Settings

OPERATOR_KEY = "operator-key-for-tests-0123456789"
SERVICE_TOKEN = "service-token-for-tests-0123456789"
GRAPH_VERSION = "v23.0"


def fake_graph_app() -> FastAPI:
    """Meta's phone-number read and business profile, as the Cloud API answers them."""
    app = FastAPI()
    numbers: dict[str, dict[str, Any]] = {}
    app.state.numbers = numbers
    app.state.requests = []

    def refuse(request: Request, phone_number_id: str) -> JSONResponse | None:
        app.state.requests.append((request.method, request.url.path, dict(request.query_params)))
        number = numbers.get(phone_number_id)
        if number is None:
            return JSONResponse(
                {
                    "error": {
                        "message": f"Unsupported get request. Object with ID "
                        f"'{phone_number_id}' does not exist",
                        "type": "GraphMethodException",
                        "code": 100,
                        "error_subcode": 33,
                        "fbtrace_id": "AbCdEf",
                    }
                },
                status_code=400,
            )
        if request.headers.get("authorization") != f"Bearer {number['token']}":
            return JSONResponse(
                {
                    "error": {
                        "message": "Invalid OAuth access token - Cannot parse access token",
                        "type": "OAuthException",
                        "code": 190,
                        "fbtrace_id": "AbCdEf",
                    }
                },
                status_code=401,
            )
        return None

    @app.get("/{version}/{phone_number_id}")
    async def phone_number(request: Request, version: str, phone_number_id: str) -> Any:
        if (refused := refuse(request, phone_number_id)) is not None:
            return refused
        n = numbers[phone_number_id]
        return {
            "display_phone_number": n["display_phone_number"],
            "verified_name": n["verified_name"],
            "quality_rating": n["quality_rating"],
            "throughput": {"level": n["throughput_level"]},
            "messaging_limit_tier": n["messaging_limit_tier"],
            "id": phone_number_id,
        }

    @app.get("/{version}/{phone_number_id}/whatsapp_business_profile")
    async def get_profile(request: Request, version: str, phone_number_id: str) -> Any:
        if (refused := refuse(request, phone_number_id)) is not None:
            return refused
        return {"data": [{"messaging_product": "whatsapp", **numbers[phone_number_id]["profile"]}]}

    @app.post("/{version}/{phone_number_id}/whatsapp_business_profile")
    async def post_profile(request: Request, version: str, phone_number_id: str) -> Any:
        if (refused := refuse(request, phone_number_id)) is not None:
            return refused
        body = await request.json()
        body.pop("messaging_product", None)
        numbers[phone_number_id]["profile"].update(body)
        return {"success": True}

    return app


def add_number(
    graph: FastAPI,
    phone_number_id: str,
    token: str,
    display: str = "+1 555-010-0001",
    **extra: Any,
) -> None:
    graph.state.numbers[phone_number_id] = {
        "token": token,
        "display_phone_number": display,
        "verified_name": "Acme Store",
        "quality_rating": "GREEN",
        "throughput_level": "STANDARD",
        "messaging_limit_tier": "TIER_1K",
        "profile": {"about": "Hello"},
        **extra,
    }


@pytest.fixture
async def graph() -> AsyncIterator[tuple[FastAPI, str]]:
    app = fake_graph_app()
    async with serve(app) as url:
        yield app, url


@pytest.fixture
def keys() -> list[str]:
    return [Fernet.generate_key().decode(), Fernet.generate_key().decode()]


@pytest.fixture
def tenant_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, graph: tuple[FastAPI, str], keys: list[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("FLOWCHAT_SERVICE_TOKEN", SERVICE_TOKEN)
    monkeypatch.setenv("FLOWCHAT_OPERATOR_KEY", OPERATOR_KEY)
    monkeypatch.setenv("FLOWCHAT_TENANT_ENCRYPTION_KEYS", keys[0])
    monkeypatch.setenv("FLOWCHAT_TENANT_GRAPH_URL", graph[1])
    monkeypatch.setenv("FLOWCHAT_TENANT_GRAPH_VERSION", GRAPH_VERSION)
    monkeypatch.setenv("FLOWCHAT_TENANT_HEALTH_REFRESH_INTERVAL_S", "3600")
    monkeypatch.setenv("FLOWCHAT_ENV", "test")
    # cheap argon2id for tests (production keeps the OWASP minimum)
    monkeypatch.setenv("FLOWCHAT_TENANT_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("FLOWCHAT_TENANT_ARGON2_MEMORY_KIB", "8192")
    monkeypatch.setenv("FLOWCHAT_TENANT_TRUST_FORWARDED_FOR", "true")


@pytest.fixture
def settings(tenant_env: None) -> Settings:
    return Settings()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tenant") as c:
        for _ in range(600):
            if (await c.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.02)
        else:
            raise TimeoutError("the tenant service did not become ready")
        yield c


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A tenant service (lifespan running) and a client to it, once its database is ready."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://tenant"
        ) as client,
    ):
        await eventually(lambda: app.state.resources.service is not None)
        yield client


@pytest.fixture
def another_service(
    tenant_env: None,
) -> Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]]:
    """Start one more tenant service on the environment as it is then (a test changes it
    first: another Graph URL, another keyring) and its client."""
    return lambda: running(Settings())


class Api:
    """Shortcuts for the tests: headers, and creating tenants, numbers and keys."""

    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    operator_key = OPERATOR_KEY
    service_token = SERVICE_TOKEN

    def __init__(self, client: httpx.AsyncClient, graph: FastAPI) -> None:
        self.client = client
        self.graph = graph
        self._counter = 0

    @staticmethod
    def bearer(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def unique(self) -> int:
        self._counter += 1
        return self._counter

    async def tenant(self, **overrides: Any) -> dict[str, Any]:
        body = {
            "name": "Acme",
            "business_name": "Acme Ltd",
            "timezone": "Africa/Nairobi",
            "locale": "en-KE",
            "currency": "KES",
            "tax_rate": "0.16",
            **overrides,
        }
        r = await self.client.post("/v1/tenants", json=body, headers=self.operator)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def at_provider(self, phone_number_id: str, token: str, display: str, **extra: Any) -> None:
        add_number(self.graph, phone_number_id, token, display, **extra)

    def meta_body(self, **overrides: Any) -> dict[str, Any]:
        n = self.unique()
        pnid = overrides.pop("phone_number_id", f"10654035224{n:04d}")
        display = overrides.pop("display_phone_number", f"+1 555-010-{n:04d}")
        token = overrides.pop("access_token", f"EAAG-access-token-{pnid}-plaintext")
        if overrides.pop("register_at_provider", True):
            add_number(self.graph, pnid, token, display)
        return {
            "provider": "meta",
            "phone_number_id": pnid,
            "waba_id": "102290129340398",
            "display_phone_number": display,
            "app_id": "123456789012345",
            "app_secret": f"app-secret-{pnid}-plaintext",
            "verify_token": f"verify-token-{pnid}-plaintext",
            "access_token": token,
            **overrides,
        }

    def twilio_body(self, **overrides: Any) -> dict[str, Any]:
        n = self.unique()
        return {
            "provider": "twilio",
            "twilio_account_sid": "AC" + f"{n:032x}",
            "twilio_auth_token": f"twilio-auth-token-{n:04d}-plaintext",
            "twilio_number": f"+1415555{n:04d}",
            **overrides,
        }

    async def account(
        self, tenant_id: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        r = await self.client.post(
            f"/v1/tenants/{tenant_id}/accounts", json=body, headers=headers or self.operator
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def key(
        self, tenant_id: str, scopes: list[str] | None = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        r = await self.client.post(
            f"/v1/tenants/{tenant_id}/api-keys",
            json={"name": "ops", "scopes": scopes or ["admin"]},
            headers=headers or self.operator,
        )
        assert r.status_code == 201, r.text
        return dict(r.json())


PASSWORD = "correct horse battery staple"


class People:
    """Users for the tests: invited by the operator, accepted, logged in."""

    password = PASSWORD

    def __init__(self, api: Api) -> None:
        self.api = api
        self._n = 0

    async def invite(
        self, tenant_id: str | None, role: str = "agent", headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        self._n += 1
        email = f"person{self._n}-{id(self)}@example.com"
        if tenant_id is None:
            url, body = "/v1/operator/users", {"email": email}
        else:
            url, body = f"/v1/tenants/{tenant_id}/users", {"email": email, "role": role}
        r = await self.api.client.post(url, json=body, headers=headers or Api.operator)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def login(
        self, email: str, password: str = PASSWORD, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.api.client.post(
            "/v1/auth/login", json={"email": email, "password": password}, headers=headers
        )

    async def user(self, tenant_id: str | None, role: str = "agent") -> dict[str, Any]:
        """An active, logged-in user: its user, session and bearer headers."""
        invited = await self.invite(tenant_id, role)
        r = await self.api.client.post(
            "/v1/auth/invitations/accept",
            json={"token": invited["invitation"]["token"], "password": PASSWORD},
        )
        assert r.status_code == 200, r.text
        r = await self.login(invited["user"]["email"])
        assert r.status_code == 200, r.text
        body = dict(r.json())
        body["headers"] = Api.bearer(body["access_token"])
        body["user_id"] = body["user"]["user_id"]
        body["email"] = body["user"]["email"]
        return body


@pytest.fixture
def people(api: Api) -> People:
    return People(api)


@pytest.fixture
def people_on(graph: tuple[FastAPI, str]) -> Callable[[httpx.AsyncClient], People]:
    """People on another running service (``another_service``)."""
    return lambda client: People(Api(client, graph[0]))


@pytest.fixture
def api(client: httpx.AsyncClient, graph: tuple[FastAPI, str]) -> Api:
    return Api(client, graph[0])
