"""Every service's OpenAPI document follows FlowChat's one API convention.

Each service's app is built (nothing started: no lifespan, no connection) and its
``/openapi.json`` read. The check fails on an operation

- without tags;
- without an example of its request body or of its success answer;
- without documented error answers, or with an error answer not in FlowChat's error
  body (``components.schemas.Error``);
- that lists things (a ``GET`` whose answer is an array, holds an array of objects, or
  takes a ``cursor``) without answering ``{items, next_cursor}`` and taking ``limit``
  and ``cursor`` (:mod:`flowchat_platform.pagination`);

and on a service without a security scheme. The few answers that are not FlowChat's own
(Meta's Cloud API shapes the gateway mirrors, the webhook handshake) are listed in
``NOT_OURS`` with the reason.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from cryptography.fernet import Fernet

SERVICES = {
    "tenant": "flowchat_tenant",
    "conversation": "flowchat_conversation",
    "state-manager": "flowchat_state_manager",
    "gateway": "flowchat_gateway",
    "sender": "flowchat_sender",
    "inbox": "flowchat_inbox",
    "relay": "flowchat_relay",
}
METHODS = ("get", "put", "post", "delete", "patch")
ERROR_REF = "#/components/schemas/Error"

#: (service, METHOD, path) whose shapes are another API's, not FlowChat's.
NOT_OURS: dict[tuple[str, str, str], str] = {
    ("gateway", "GET", "/{version}/{waba_id}/message_templates"): "Meta's Cloud API paging",
    ("gateway", "POST", "/{version}/{phone_number_id}/messages"): "Meta's Cloud API answer",
    ("gateway", "POST", "/{version}/{phone_number_id}/media"): "Meta's Cloud API answer",
    ("gateway", "GET", "/webhooks/meta"): "Meta's verification handshake (plain text)",
    ("gateway", "POST", "/webhooks/meta"): "Meta's webhook body",
    ("gateway", "POST", "/webhooks/twilio/{account_id}"): "Twilio's webhook form",
}
#: Lookups that answer a fixed set, not a list that grows: no pages.
NOT_LISTS: dict[tuple[str, str, str], str] = {
    ("tenant", "GET", "/internal/v1/accounts/by-waba/{waba_id}"): "a WABA's few numbers",
    ("tenant", "POST", "/internal/v1/accounts/batch"): "the ids asked for (at most 256)",
    ("tenant", "GET", "/internal/v1/dev/outbox"): "development mail outbox (not in production)",
    ("relay", "GET", "/v1/event-types"): "the fixed catalogue of event types",
}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    patch = pytest.MonkeyPatch()
    patch.setenv("FLOWCHAT_TENANT_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    patch.setenv("FLOWCHAT_ENV", "development")
    try:
        docs = {}
        for service, package in SERVICES.items():
            app_module = importlib.import_module(f"{package}.app")
            settings = importlib.import_module(f"{package}.settings").Settings()
            docs[service] = app_module.create_app(settings).openapi()
        return docs
    finally:
        patch.undo()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def success(op: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return next((c, r) for c, r in sorted(op["responses"].items()) if c.startswith("2"))


def is_error_body(schema: dict[str, Any], doc: dict[str, Any]) -> bool:
    """``components.schemas.Error``, or a model of exactly its shape."""
    if schema.get("$ref") == ERROR_REF:
        return True
    body = resolve(schema, doc) if "$ref" in schema else schema
    if set(body.get("properties", {})) != {"error"}:
        return False
    error = resolve(body["properties"]["error"], doc)
    return {"code", "message"} <= set(error.get("properties", {}))


def has_example(media: dict[str, Any]) -> bool:
    return "example" in media or bool(media.get("examples"))


def problems(service: str, doc: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if not doc.get("components", {}).get("securitySchemes"):
        found.append(f"{service}: no security scheme")
    for method, path, op in operations(doc):
        name = f"{service} {method} {path}"
        if not op.get("tags"):
            found.append(f"{name}: no tags")
        if path.endswith("/import") and "text/csv" not in op.get("requestBody", {}).get(
            "content", {}
        ):
            found.append(f"{name}: an import without its text/csv request body")
        for media_type, media in op.get("requestBody", {}).get("content", {}).items():
            if not has_example(media):
                found.append(f"{name}: no example of its {media_type} request body")
        if (service, method, path) in NOT_OURS:
            continue
        code, answer = success(op)
        for media_type, media in answer.get("content", {}).items():
            if not has_example(media):
                found.append(f"{name}: no example of its {code} {media_type} answer")
        errors = {c: r for c, r in op["responses"].items() if c[0] in "45"}
        if not any(c.startswith("4") for c in errors):
            found.append(f"{name}: no documented error answer")
        for c, r in errors.items():
            schema = r.get("content", {}).get("application/json", {}).get("schema", {})
            if not is_error_body(schema, doc):
                found.append(f"{name}: its {c} answer is not the Error body")
        if method == "GET" and (service, method, path) not in NOT_LISTS:
            found += list_problems(name, op, answer, doc)
    return found


def list_problems(
    name: str, op: dict[str, Any], answer: dict[str, Any], doc: dict[str, Any]
) -> list[str]:
    raw = answer.get("content", {}).get("application/json", {}).get("schema")
    if raw is None:
        return []
    schema = resolve(raw, doc)
    params = {p["name"] for p in op.get("parameters", [])}
    arrays = [
        key
        for key, prop in schema.get("properties", {}).items()
        if resolve(prop, doc).get("type") == "array"
        and "$ref" in resolve(prop, doc).get("items", {})
    ]
    is_list = (
        schema.get("type") == "array" or "cursor" in params or (arrays and not path_names_one(name))
    )
    if not is_list:
        return []
    out = []
    if set(schema.get("properties", {})) != {"items", "next_cursor"}:
        out.append(f"{name}: a list whose answer is not {{items, next_cursor}}")
    if not {"limit", "cursor"} <= params:
        out.append(f"{name}: a list without the limit and cursor parameters")
    return out


def path_names_one(name: str) -> bool:
    """``GET …/{id}``: one thing, whose fields may be arrays."""
    return name.rstrip("/").rsplit("/", 1)[-1].startswith("{")


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_follows_the_api_convention(documents, service):
    assert problems(service, documents[service]) == []


def test_the_check_sees_a_list_without_pages_and_an_operation_without_tags():
    doc: dict[str, Any] = {
        "components": {"securitySchemes": {"HTTPBearer": {}}, "schemas": {}},
        "paths": {
            "/v1/things": {
                "get": {
                    "parameters": [{"name": "limit"}],
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"type": "array", "items": {}},
                                    "example": [],
                                }
                            }
                        },
                        "401": {"content": {"application/json": {"schema": {"$ref": ERROR_REF}}}},
                    },
                }
            }
        },
    }
    assert problems("demo", doc) == [
        "demo GET /v1/things: no tags",
        "demo GET /v1/things: a list whose answer is not {items, next_cursor}",
        "demo GET /v1/things: a list without the limit and cursor parameters",
    ]
