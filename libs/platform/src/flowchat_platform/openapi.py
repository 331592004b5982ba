"""Every service's OpenAPI document, completed the same way (:func:`complete`).

:func:`flowchat_platform.http.build_app` passes each generated document through
:func:`complete`, which

- documents the answers the shared layer can give on every operation (400, 401/403/503
  where a bearer token is checked, 404 where the path names something, 413, 422), each,
  like every other 4xx/5xx, with FlowChat's error body (``components.schemas.Error``) and
  an example of it;
- gives every JSON request body and every JSON answer an example: the route's own
  (``openapi_examples``, a model's ``examples``) when it has one, else one built from the
  schema (each field's ``examples``/``default``/``enum``/format), so a reader always
  sees a whole body;
- marks required the parameters a route checks itself for a better error than FastAPI's
  (``Header(json_schema_extra=REQUIRED)``: the ``Idempotency-Key``), so clients see them
  as required.

``tests/ops/test_ops_openapi.py`` checks every service's document against these rules
and the list convention (:mod:`flowchat_platform.pagination`).
"""

from __future__ import annotations

from typing import Any

from flowchat_platform.pagination import encode_cursor

#: ``json_schema_extra`` of a parameter the route requires (and checks) itself.
REQUIRED: dict[str, Any] = {"x-flowchat-required": True}

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {}},
            },
        }
    },
}
ERROR_REF = "#/components/schemas/Error"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

#: The example error body of each status (the code a client most often sees).
ERROR_EXAMPLES: dict[str, tuple[str, str]] = {
    "400": ("invalid_cursor", "the cursor is not one this API issued"),
    "401": ("unauthorized", "missing, unknown or revoked bearer token"),
    "403": ("forbidden", "the token may not do this"),
    "404": ("not_found", "nothing of that id for this tenant"),
    "409": ("conflict", "the request conflicts with the current state"),
    "413": ("payload_too_large", "the JSON body exceeds 1048576 bytes"),
    "415": ("unsupported_media_type", "this media type is not accepted"),
    "422": ("invalid_request", "the request is invalid"),
    "429": ("rate_limited", "too many requests; retry after the Retry-After seconds"),
    "500": ("internal_error", "something went wrong on our side"),
    "502": ("upstream_unavailable", "the provider did not answer"),
    "503": ("dependency_unavailable", "a dependency did not answer; retry shortly"),
}


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Complete a generated OpenAPI document in place (see the module docstring)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Error", ERROR_SCHEMA)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            _require_marked(operation)
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for code, description in _shared_errors(path, operation).items():
                responses.setdefault(code, {"description": description})
            for code, response in responses.items():
                if code.startswith(("4", "5")):
                    _as_json_error(code, response, operation)
                else:
                    _give_examples(response.get("content", {}), schema)
            _give_examples(operation.get("requestBody", {}).get("content", {}), schema)
    return schema


def _require_marked(operation: dict[str, Any]) -> None:
    for param in operation.get("parameters", []):
        if param.get("schema", {}).pop("x-flowchat-required", False):
            param["required"] = True


def _shared_errors(path: str, operation: dict[str, Any]) -> dict[str, str]:
    params = operation.get("parameters", [])
    names = {str(p.get("name", "")).lower() for p in params}
    codes = {"400": "Unreadable request (a body that is not valid JSON)"}
    if "cursor" in names:
        codes["400"] = "Unreadable request, or a cursor this API did not issue"
    if operation.get("security") or "authorization" in names:
        codes["401"] = "Missing, unknown or revoked bearer token"
        codes["403"] = "The token may not do this (scope or tenant)"
        codes["503"] = "A dependency (the tenant service, the database) is down"
    if "{" in path:
        codes["404"] = "Nothing of that id (for this tenant)"
    if "requestBody" in operation:
        codes["413"] = "Body over the size limit"
    if params or "requestBody" in operation:
        codes["422"] = "Invalid input"
    return codes


def _as_json_error(code: str, response: dict[str, Any], operation: dict[str, Any]) -> None:
    content = response.setdefault("content", {})
    json_body = content.get("application/json", {})
    body = json_body.get("schema")
    if body is None or body.get("$ref", "").endswith("/HTTPValidationError"):
        json_body = content["application/json"] = {"schema": {"$ref": ERROR_REF}}
    for media in [m for m in content if m != "application/json"]:
        if content[media].get("schema", {}).get("$ref") == ERROR_REF:
            del content[media]  # errors are JSON whatever the route's own media type
    if json_body.get("schema", {}).get("$ref") == ERROR_REF and not _has_example(json_body):
        error, message = ERROR_EXAMPLES.get(code, ("error", response.get("description", "")))
        if code == "400" and "cursor" not in {
            str(p.get("name", "")) for p in operation.get("parameters", [])
        }:
            error, message = "invalid_request", "the body is not valid JSON"
        json_body["example"] = {"error": {"code": error, "message": message, "details": []}}


def _has_example(media: dict[str, Any]) -> bool:
    return "example" in media or "examples" in media


def _give_examples(content: dict[str, Any], document: dict[str, Any]) -> None:
    for media_type, media in content.items():
        if _has_example(media):
            continue
        schema = media.get("schema")
        if schema is None:
            continue
        if media_type.endswith(("/json", "+json", "x-www-form-urlencoded", "form-data")):
            media["example"] = example_of(schema, document)
        elif schema.get("type") == "string":
            media["example"] = schema.get("example", "")


def example_of(schema: dict[str, Any], document: dict[str, Any], depth: int = 0) -> Any:
    """An example value of ``schema`` (``$ref`` resolved in ``document``)."""
    if depth > 8:
        return None
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        target = document.get("components", {}).get("schemas", {}).get(name, {})
        return example_of(target, document, depth + 1)
    for key in ("example", "const", "default"):
        if key in schema and schema[key] is not None:
            return schema[key]
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key, []) if o.get("type") != "null"]
        if options:
            return example_of(options[0], document, depth + 1)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props: dict[str, Any] = schema.get("properties", {})
        out = {name: example_of(sub, document, depth + 1) for name, sub in props.items()}
        if set(out) == {"items", "next_cursor"}:  # a page: show a cursor, not a null
            out["next_cursor"] = encode_cursor((1,))
        return out
    if kind == "array":
        return [example_of(schema.get("items", {}), document, depth + 1)]
    return _scalar(schema)


def _scalar(schema: dict[str, Any]) -> Any:
    kind, fmt = schema.get("type"), schema.get("format", "")
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return max(float(schema.get("minimum", 1.5)), 1.5)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if fmt == "date-time":
        return "2026-12-06T10:00:00Z"
    if fmt == "date":
        return "2026-12-06"
    if fmt in ("uri", "url"):
        return "https://example.com/hooks/flowchat"
    if fmt == "email":
        return "ops@example.com"
    if fmt == "binary":
        return ""
    title = str(schema.get("title", "")).lower().replace(" ", "_")
    return title or "string"


def csv_request_body(example: str, description: str) -> dict[str, Any]:
    """``openapi_extra`` of a route that reads a raw CSV body itself (an import): the
    body is declared, required, as ``text/csv`` with an example file."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"text/csv": {"schema": {"type": "string"}, "example": example}},
        }
    }
