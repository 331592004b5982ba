import pytest

from flowchat_platform.accounts import ApiKeyInfo
from flowchat_platform.auth import Caller, authenticate, require_scope
from flowchat_platform.errors import UpstreamError
from flowchat_platform.http import ApiError

SERVICE_TOKEN = "s" * 24


class Keys:
    """A TenantClient stand-in: only the one method authenticate() calls."""

    def __init__(self, known: dict[str, ApiKeyInfo] | None = None, fail: bool = False) -> None:
        self.known = known or {}
        self.fail = fail

    async def api_key(self, key: str) -> ApiKeyInfo | None:
        if self.fail:
            raise UpstreamError("down", service="tenant")
        return self.known.get(key)


KEY = ApiKeyInfo(key_id="key_1", tenant_id="tnt_a", scopes=["read"])


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "bearer"])
async def test_missing_or_malformed_bearer_is_401(header):
    with pytest.raises(ApiError) as info:
        await authenticate(header, service_token=SERVICE_TOKEN, tenants=Keys())
    assert info.value.status == 401


async def test_service_token_is_flowchat_itself():
    caller = await authenticate(
        f"Bearer {SERVICE_TOKEN}", service_token=SERVICE_TOKEN, tenants=None
    )
    assert caller.is_service
    require_scope(caller, "admin", "tnt_any")


async def test_api_key_resolves_to_its_tenant_and_scopes():
    caller = await authenticate(
        "Bearer fc_k", service_token=SERVICE_TOKEN, tenants=Keys({"fc_k": KEY})
    )
    assert caller == Caller("tnt_a", frozenset({"read"}), "key_1")
    require_scope(caller, "read", "tnt_a")
    with pytest.raises(ApiError) as other_tenant:
        require_scope(caller, "read", "tnt_b")
    assert other_tenant.value.status == 403
    with pytest.raises(ApiError) as no_scope:
        require_scope(caller, "send")
    assert no_scope.value.status == 403


async def test_unknown_key_is_401_and_tenant_service_down_is_503():
    with pytest.raises(ApiError) as unknown:
        await authenticate("Bearer nope", service_token=SERVICE_TOKEN, tenants=Keys())
    assert unknown.value.status == 401
    with pytest.raises(ApiError) as down:
        await authenticate("Bearer x", service_token=SERVICE_TOKEN, tenants=Keys(fail=True))
    assert down.value.status == 503


def _tenant_app(keys):
    import fastapi

    from flowchat_platform.auth import tenant_dependency

    app = fastapi.FastAPI()
    tenant = tenant_dependency(
        "admin", credentials=lambda request: (SERVICE_TOKEN, keys), description="keys"
    )

    @app.get("/whoami")
    async def whoami(tenant_id: str = fastapi.Depends(tenant)) -> dict[str, str]:
        return {"tenant_id": tenant_id}

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return fastapi.responses.JSONResponse({"code": exc.code}, status_code=exc.status)

    return app


async def test_tenant_dependency_resolves_the_acting_tenant():
    import httpx

    admin = ApiKeyInfo(key_id="key_2", tenant_id="tnt_a", scopes=["admin"])
    app = _tenant_app(Keys({"fc_admin": admin, "fc_read": KEY}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:

        async def call(token, tenant=None):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            if tenant:
                headers["X-Tenant-ID"] = tenant
            response = await client.get("/whoami", headers=headers)
            return response.status_code, response.json()

        assert await call(SERVICE_TOKEN, "tnt_x") == (200, {"tenant_id": "tnt_x"})
        assert await call(SERVICE_TOKEN) == (400, {"code": "tenant_required"})
        assert await call("fc_admin") == (200, {"tenant_id": "tnt_a"})
        assert await call("fc_admin", "tnt_a") == (200, {"tenant_id": "tnt_a"})
        assert await call("fc_admin", "tnt_b") == (403, {"code": "forbidden"})
        assert await call("fc_read") == (403, {"code": "forbidden"})
        assert await call(None) == (401, {"code": "unauthorized"})
    schemes = app.openapi()["components"]["securitySchemes"]
    assert schemes == {"HTTPBearer": {"type": "http", "scheme": "bearer", "description": "keys"}}
