"""Meta's OpenAPI spec, loaded at start, and the send-request validator built from it.

The spec (``spec/meta-business-messaging-openapi-v23.0.yaml``, a copy of the shared
reference) is the contract. Its request schema is found by ``operationId``
(``sendMessage``) and resolved with JSON-Schema ``$ref`` resolution; no schema is
copied here. The published spec has a few defects that make Meta's *own* request
examples fail, so :func:`apply_errata` patches the loaded tree in place, each fix
named and explained. Then :class:`SendValidator` adds the documented limits the
spec does not state (text 4096, caption 1024, list rows…), and maps violations to
Meta's codes: a missing field → 131008, a value over a documented limit → 131009,
anything else → 100.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
import yaml
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from flowchat_sandbox.errors import GraphError

SPEC_PATH = Path(__file__).parent / "spec" / "meta-business-messaging-openapi-v23.0.yaml"
SPEC_URI = "urn:meta:business-messaging:v23.0"
SEND_OPERATION = "sendMessage"
MEDIA_TYPES = ("audio", "document", "image", "sticker", "video")
CAPTIONED = ("image", "video", "document")
VERDICT_CACHE_SIZE = 4096
#: ``biz_opaque_callback_data``: a string up to this long (errata 6 below).
OPAQUE_MAX_CHARS = 512
LENGTH_KEYWORDS = frozenset({"maxLength", "minLength", "maxItems", "minItems"})


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    with path.open("rb") as fh:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        spec: dict[str, Any] = yaml.load(fh, Loader=loader)  # noqa: S506 - a safe loader
    return spec


def find_operation(spec: dict[str, Any], operation_id: str) -> dict[str, Any]:
    for item in spec["paths"].values():
        for method, operation in item.items():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                return {"method": method, **operation}
    raise KeyError(operation_id)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def apply_errata(spec: dict[str, Any]) -> dict[str, Any]:
    """Fix the published spec's defects, in place; return it.

    1. ``allOf: [Base, {additionalProperties: false, ...}]`` rejects every property
       of ``Base`` under JSON-Schema semantics; the intent is "no properties beyond
       these and Base's", so Base's property names are added (as ``{}``: Base itself
       validates them) to the closed member. (``unevaluatedProperties: false`` says
       the same but costs three times as much to evaluate.)
    2. ``LanguageObject.policy`` is documented as optional (default ``deterministic``).
    3. Template button ``index`` is a position 0-9 sent as string or integer; the
       published pattern ``^[2-6, 11-14]$`` is a malformed character class.
       ``sub_type`` is accepted in any case and includes ``flow``.
    4. Location ``latitude``/``longitude`` are numbers (Meta's examples send numbers).
    5. Interactive ``order_details`` / ``order_status`` messages (Meta's own examples)
       are missing from ``InteractiveObject.type`` and ``ActionObject``.
    6. ``biz_opaque_callback_data`` (a string up to 512 characters, echoed in status
       webhooks) is documented for every message type but missing from the schema.
    7. Template components and parameters name their concrete schema only through a
       ``discriminator`` without ``oneOf`` (``TemplateComponent``, ``ParameterObject``,
       ``ButtonParameterObject``), which JSON Schema ignores: a ``currency`` parameter
       without its ``currency`` object would pass. Where such a base is referenced
       (outside its own mapped schemas, which extend it), the reference becomes an
       ``if type == … then $ref <mapped schema>`` dispatch. Button parameters of type
       ``action`` (flow and catalog buttons, in Meta's own examples) are missing from
       ``ButtonParameterObject``; they are added, with an ``action`` object.
    8. Live behaviour the v23.0 spec predates: a send may name its recipient by
       business-scoped user id in ``recipient`` instead of a phone number in ``to``
       (Meta's BSUID page); ``to`` is required only when ``recipient`` is absent.
    """
    schemas = spec["components"]["schemas"]
    # (6) first: (1) copies BaseMessageProperties' property names
    base = schemas["BaseMessageProperties"]["properties"]
    base.setdefault("biz_opaque_callback_data", {"type": "string", "maxLength": OPAQUE_MAX_CHARS})
    # (8)
    base.setdefault("recipient", {"type": "string"})
    properties = schemas["BaseMessageProperties"]
    properties["required"] = [r for r in properties.get("required", []) if r != "to"]
    properties["anyOf"] = [{"required": ["to"]}, {"required": ["recipient"]}]

    for node in list(_walk(spec)):
        members = node.get("allOf")
        if not isinstance(members, list):
            continue
        resolved = [_resolve(spec, m) if isinstance(m, dict) else {} for m in members]
        names = {name for m in resolved for name in m.get("properties", {})}
        for member in members:
            if isinstance(member, dict) and member.get("additionalProperties") is False:
                props = member.setdefault("properties", {})
                for name in names - set(props):
                    props[name] = {}  # validated by its own member of the allOf

    language = schemas["LanguageObject"]
    language["required"] = [r for r in language.get("required", []) if r != "policy"]

    index_schema = {"type": ["string", "integer"], "pattern": "^[0-9]$", "minimum": 0, "maximum": 9}
    sub_types = ["quick_reply", "url", "catalog", "flow", "copy_code", "QUICK_REPLY", "URL"]
    sub_types += ["CATALOG", "FLOW", "COPY_CODE"]
    for name in ("TemplateComponent", "ButtonComponent"):
        for node in _walk(schemas[name]):
            props = node.get("properties")
            if isinstance(props, dict):
                if "index" in props:
                    props["index"] = dict(index_schema)
                if "sub_type" in props:
                    props["sub_type"] = {"type": "string", "enum": sub_types}

    for node in _walk(schemas["LocationMessage"]):
        props = node.get("properties")
        if isinstance(props, dict) and "latitude" in props:
            props["latitude"] = {"type": ["number", "string"]}
            props["longitude"] = {"type": ["number", "string"]}

    interactive_type = schemas["InteractiveObject"]["properties"]["type"]
    interactive_type["enum"] = [
        *interactive_type["enum"],
        "order_details",
        "order_status",
        "cta_url",
    ]
    schemas["ActionObject"]["oneOf"].append(
        {
            "required": ["name", "parameters"],
            "properties": {
                "name": {"type": "string", "enum": ["review_and_pay", "review_order"]},
                "parameters": {"type": "object"},
            },
        }
    )
    # Meta's "Interactive CTA URL button messages" (documented beside the OpenAPI
    # document, not in it): action {name: cta_url, parameters {display_text, url}}.
    schemas["ActionObject"]["oneOf"].append(
        {
            "required": ["name", "parameters"],
            "properties": {
                "name": {"type": "string", "enum": ["cta_url"]},
                "parameters": {
                    "type": "object",
                    "required": ["display_text", "url"],
                    "properties": {
                        "display_text": {"type": "string", "maxLength": 20},
                        "url": {"type": "string", "pattern": "^https?://"},
                    },
                },
            },
        }
    )
    button_parameter = schemas["ButtonParameterObject"]
    button_parameter["properties"]["type"]["enum"].append("action")
    button_parameter["discriminator"]["mapping"]["action"] = (
        "#/components/schemas/ButtonActionParameter"
    )
    schemas["ButtonActionParameter"] = {
        "allOf": [
            {"$ref": "#/components/schemas/ButtonParameterObject"},
            {
                "type": "object",
                "required": ["action"],
                "properties": {"type": {"enum": ["action"]}, "action": {"type": "object"}},
            },
        ]
    }
    _dispatch_discriminators(schemas)
    return spec


def _dispatch_discriminators(schemas: dict[str, Any]) -> None:
    """Erratum 7: a reference to a ``discriminator``-only base checks the mapped schema."""
    prefix = "#/components/schemas/"
    dispatch: dict[str, dict[str, Any]] = {}
    extends: dict[str, set[str]] = {}  # base ref → the schemas mapped from it
    for name, schema in schemas.items():
        disc = schema.get("discriminator") if isinstance(schema, dict) else None
        if not disc or "mapping" not in disc or "oneOf" in schema:
            continue
        prop, mapping = disc["propertyName"], disc["mapping"]
        dispatch[prefix + name] = {
            "allOf": [
                {"$ref": prefix + name},
                *(
                    {
                        "if": {"properties": {prop: {"const": value}}, "required": [prop]},
                        "then": {"$ref": target},
                    }
                    for value, target in mapping.items()
                ),
            ]
        }
        extends[prefix + name] = set(mapping.values())
    for name in list(schemas):
        own = prefix + name
        for node in list(_walk(schemas[name])):  # listed first: the dispatches hold refs
            for key, value in list(node.items()):
                if isinstance(value, dict):
                    node[key] = _redirect(value, own, dispatch, extends)
                elif isinstance(value, list):
                    node[key] = [_redirect(v, own, dispatch, extends) for v in value]


def _redirect(
    node: Any, own: str, dispatch: dict[str, dict[str, Any]], extends: dict[str, set[str]]
) -> Any:
    ref = node.get("$ref") if isinstance(node, dict) and len(node) == 1 else None
    if ref in dispatch and own not in extends[ref]:
        return copy.deepcopy(dispatch[ref])
    return node


def _path(error: ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f"['{part}']" if out else str(part))
    return out or "message"


class SendValidator:
    """Validates a ``sendMessage`` body: the spec's schema, then Meta's documented limits."""

    def __init__(self, spec: dict[str, Any]) -> None:
        operation = find_operation(spec, SEND_OPERATION)
        content = operation["requestBody"]["content"]["application/json"]
        self.examples: dict[str, Any] = {
            name: ex["value"] for name, ex in content.get("examples", {}).items()
        }
        schema = apply_errata(copy.deepcopy(spec))
        registry: Registry[Any] = Registry().with_resource(
            SPEC_URI, Resource.from_contents(schema, default_specification=DRAFT202012)
        )
        root = _resolve(schema, content["schema"])
        self.mapping: dict[str, str] = dict(root["discriminator"]["mapping"])
        self._verdicts: dict[bytes, tuple[int, str] | None] = {}
        self._validators = {
            kind: Draft202012Validator({"$ref": SPEC_URI + ref}, registry=registry)
            for kind, ref in self.mapping.items()
        }

    @cached_property
    def types(self) -> frozenset[str]:
        return frozenset(self.mapping)

    def normalize(self, body: dict[str, Any]) -> dict[str, Any]:
        """Meta's defaults: ``recipient_type`` individual; ``type`` from the one content
        object present, else text. Template component ``type`` values are read in any
        case, as Meta's live API reads them (clients send ``"BODY"``, ``"HEADER"``; the
        spec lists lower case only)."""
        out = dict(body)
        out.setdefault("recipient_type", "individual")
        if "type" not in out:
            present = [kind for kind in self.mapping if kind in out]
            out["type"] = present[0] if len(present) == 1 else "text"
        template = out.get("template")
        components = template.get("components") if isinstance(template, dict) else None
        if (
            isinstance(template, dict)
            and isinstance(components, list)
            and any(
                isinstance(c, dict) and isinstance(c.get("type"), str) and not c["type"].islower()
                for c in components
            )
        ):
            lowered = [
                {**c, "type": c["type"].lower()}
                if isinstance(c, dict) and isinstance(c.get("type"), str)
                else c
                for c in components
            ]
            out["template"] = {**template, "components": lowered}
        return out

    def validate(self, raw: Any) -> dict[str, Any]:
        """Return the normalized body, or raise :class:`GraphError` as Meta would.

        The schema gives ``to`` (and ``recipient``) no constraint but "a string", and
        ``biz_opaque_callback_data`` none but "a string of at most 512 characters", so a
        body's verdict does not depend on their values: verdicts are cached by the rest
        of the body (bounded), which keeps bulk sends of one message to many recipients
        cheap even when each carries its own callback data.
        """
        if not isinstance(raw, dict):
            raise GraphError(100, "The request body must be a JSON object.")
        if "to" not in raw and "recipient" not in raw:
            raise GraphError(131008, "The parameter to is required.")
        key: bytes | None = None
        address = raw.get("to", raw.get("recipient"))
        if isinstance(address, str) and isinstance(raw.get("recipient", ""), str):
            shape = {k: v for k, v in raw.items() if k not in ("to", "recipient")}
            opaque = shape.get("biz_opaque_callback_data")
            # b"o": any valid callback value was here (removed); b"-": the body as sent
            mark = b"-"
            if isinstance(opaque, str) and len(opaque) <= OPAQUE_MAX_CHARS:
                del shape["biz_opaque_callback_data"]
                mark = b"o"
            try:
                key = mark + orjson.dumps(shape, option=orjson.OPT_SORT_KEYS)
            except TypeError:
                key = None
        if key is not None and key in self._verdicts:
            verdict = self._verdicts[key]
            if verdict is not None:
                raise GraphError(verdict[0], verdict[1])
            return self.normalize(raw)
        try:
            body = self._validate(raw)
        except GraphError as exc:
            self._remember(key, (exc.code, exc.details))
            raise
        self._remember(key, None)
        return body

    def _remember(self, key: bytes | None, verdict: tuple[int, str] | None) -> None:
        if key is None:
            return
        if len(self._verdicts) >= VERDICT_CACHE_SIZE:
            self._verdicts.clear()
        self._verdicts[key] = verdict

    def _validate(self, raw: dict[str, Any]) -> dict[str, Any]:
        body = self.normalize(raw)
        if body.get("messaging_product") != "whatsapp":
            if "messaging_product" not in body:
                raise GraphError(131008, "The parameter messaging_product is required.")
            raise GraphError(100, "Param messaging_product must be 'whatsapp'.")
        kind = body["type"]
        validator = self._validators.get(kind) if isinstance(kind, str) else None
        if validator is None:
            raise GraphError(131051, f"Message type '{kind}' is not currently supported.")
        if kind in MEDIA_TYPES and isinstance(body.get(kind), dict):
            media = body[kind]
            if "id" in media and "link" in media:
                raise GraphError(100, f"Param {kind} must have either 'id' or 'link', not both.")
            if "id" not in media and "link" not in media:
                raise GraphError(131008, f"Param {kind} requires either 'id' or 'link'.")
        errors = list(validator.iter_errors(body))
        if errors:
            error = best_match(errors)
            assert error is not None
            raise _schema_error(_deepest(error))
        check_limits(body)
        return body


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = schema
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    return _resolve(schema, target)


def _deepest(error: ValidationError) -> ValidationError:
    """Inside a ``oneOf``/``anyOf``, the failure of the branch that applied: branches
    that only miss their own discriminating fields did not apply."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        depth = len(error.absolute_path)
        applied = [
            c
            for c in error.context
            if not (c.validator == "required" and len(c.absolute_path) == depth)
        ]
        if applied:
            inner = best_match(applied)
            if inner is not None:
                return _deepest(inner)
    return error


_LIMIT_WORDING = {
    "maxLength": "must be at most {} characters long",
    "minLength": "must be at least {} characters long",
    "maxItems": "must have at most {} items",
    "minItems": "must have at least {} items",
}


def _schema_error(error: ValidationError) -> GraphError:
    where = _path(error)
    if error.validator == "required":
        match = re.match(r"'([^']+)' is a required property", error.message)
        missing = match.group(1) if match else "?"
        field = f"{where}['{missing}']" if where != "message" else missing
        return GraphError(131008, f"The parameter {field} is required.")
    if error.validator in LENGTH_KEYWORDS:
        wording = _LIMIT_WORDING[str(error.validator)].format(error.validator_value)
        return GraphError(131009, f"Param {where} {wording}.")
    message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
    return GraphError(100, f"Param {where} is invalid: {message}")


def _too_long(value: Any, limit: int, field: str) -> None:
    if isinstance(value, str) and len(value) > limit:
        raise GraphError(131009, f"Param {field} must be at most {limit} characters long.")


def check_limits(body: dict[str, Any]) -> None:
    """The documented limits the spec leaves out (reference §1)."""
    kind = body["type"]
    if kind == "text":
        text = body.get("text") or {}
        if not text.get("body"):
            raise GraphError(131008, "The parameter text['body'] is required.")
        _too_long(text.get("body"), 4096, "text['body']")
    elif kind in CAPTIONED:
        _too_long(body[kind].get("caption"), 1024, f"{kind}['caption']")
    elif kind == "interactive":
        _check_interactive(body["interactive"])


def _check_interactive(interactive: dict[str, Any]) -> None:
    _too_long((interactive.get("body") or {}).get("text"), 1024, "interactive['body']['text']")
    _too_long((interactive.get("footer") or {}).get("text"), 60, "interactive['footer']['text']")
    _too_long((interactive.get("header") or {}).get("text"), 60, "interactive['header']['text']")
    action = interactive.get("action") or {}
    if interactive.get("type") == "button":
        buttons = action.get("buttons") or []
        if len(buttons) > 3:
            raise GraphError(131009, "Param interactive['action']['buttons'] allows 3 buttons.")
        for i, button in enumerate(buttons):
            reply = button.get("reply") or {}
            _too_long(reply.get("title"), 20, f"interactive['action']['buttons'][{i}]['title']")
            _too_long(reply.get("id"), 256, f"interactive['action']['buttons'][{i}]['id']")
    elif interactive.get("type") == "list":
        _too_long(action.get("button"), 20, "interactive['action']['button']")
        sections = action.get("sections") or []
        if len(sections) > 10:
            raise GraphError(131009, "Param interactive['action']['sections'] allows 10 sections.")
        rows = 0
        for s, section in enumerate(sections):
            where = f"interactive['action']['sections'][{s}]"
            _too_long(section.get("title"), 24, f"{where}['title']")
            for r, row in enumerate(section.get("rows") or []):
                rows += 1
                _too_long(row.get("id"), 200, f"{where}['rows'][{r}]['id']")
                _too_long(row.get("title"), 24, f"{where}['rows'][{r}]['title']")
                _too_long(row.get("description"), 72, f"{where}['rows'][{r}]['description']")
        if rows > 10:
            raise GraphError(131009, "Param interactive['action']['sections'] allows 10 rows.")


def validate_read(body: dict[str, Any]) -> str:
    """A mark-as-read (optionally with a typing indicator) body; returns the message id."""
    if body.get("messaging_product") != "whatsapp":
        raise GraphError(100, "Param messaging_product must be 'whatsapp'.")
    if body.get("status") != "read":
        raise GraphError(100, "Param status must be 'read'.")
    message_id = body.get("message_id")
    if not message_id:
        raise GraphError(131008, "The parameter message_id is required.")
    if not isinstance(message_id, str):
        raise GraphError(100, "Param message_id must be a string.")
    typing = body.get("typing_indicator")
    if typing is not None and (not isinstance(typing, dict) or typing.get("type") != "text"):
        raise GraphError(100, "Param typing_indicator['type'] must be 'text'.")
    return message_id
