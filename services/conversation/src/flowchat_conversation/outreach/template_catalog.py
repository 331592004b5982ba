"""Message templates: the provider's catalog, and rendering parameters for a contact.

A template's HEADER (``format: TEXT``) and BODY texts declare parameters: positional
``{{1}}`` or named ``{{first_name}}`` (``parameter_format: NAMED``). A campaign maps
each one to a *value spec*, a string in which ``{{field}}`` or ``{{field|fallback}}``
stands for a contact field: ``name``, ``first_name``, ``phone``, ``wa_id``, or a
custom attribute (``{{city}}`` or ``{{attributes.city}}``). A value that renders empty
is *missing* for that contact; campaigns refuse to start with missing values.

Looking templates up at the provider is an adapter's work
(:class:`~flowchat_conversation.outreach.graph_templates.GraphTemplates`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from flowchat_contracts import TemplateComponent, TemplateContent, TemplateParameter
from flowchat_contracts.whatsapp import PLACEHOLDER, TemplateDefinition, placeholders
from flowchat_conversation.errors import OutreachError

FIELD = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:\|([^}]*))?\}\}")
#: Meta refuses parameters with new lines, tabs or more than 4 consecutive spaces.
_SPACES = re.compile(r"\s{2,}")
MAX_PARAMETER_LENGTH = 1024

ComponentKind = Literal["header", "body"]


class Template(TemplateDefinition):
    """A template as a campaign uses it (category ``UTILITY`` when Meta gives none)."""

    DEFAULT_CATEGORY = "UTILITY"

    def text(self, kind: ComponentKind) -> str:
        component = self.component(kind)
        if component is None or str(component.get("format", "TEXT")).upper() != "TEXT":
            return ""
        return str(component.get("text") or "")

    def slots(self, kind: ComponentKind) -> list[str]:
        return placeholders(self.text(kind))

    @property
    def media_header(self) -> str | None:
        component = self.component("header")
        fmt = str((component or {}).get("format", "TEXT")).upper()
        return fmt.lower() if component is not None and fmt != "TEXT" else None


class ParameterMap(BaseModel):
    """Value specs per component: a list (positional) or a mapping (named templates)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    header: list[str] | dict[str, str] | None = None
    body: list[str] | dict[str, str] | None = None


def contact_fields(
    *, name: str | None, wa_id: str, attributes: Mapping[str, Any]
) -> dict[str, str]:
    """The fields a value spec may name, for one contact."""
    fields = {
        str(k): "" if v is None else str(v)
        for k, v in attributes.items()
        if not isinstance(v, dict)
    }
    fields.update({f"attributes.{k}": v for k, v in list(fields.items())})
    full = (name or "").strip()
    fields.update(
        name=full,
        first_name=full.split()[0] if full else "",
        phone="+" + wa_id,
        wa_id=wa_id,
    )
    return fields


def render_value(spec: str, fields: Mapping[str, str]) -> tuple[str, list[str]]:
    """Fill a value spec; (text, names of the fields that were missing)."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        value = fields.get(match.group(1), "").strip()
        if value:
            return value
        if match.group(2) is not None and match.group(2).strip():
            return match.group(2).strip()
        missing.append(match.group(1))
        return ""

    text = _SPACES.sub(" ", FIELD.sub(fill, spec)).strip()
    return text[:MAX_PARAMETER_LENGTH], missing


def _specs(template: Template, kind: ComponentKind, given: Any) -> list[tuple[str | None, str]]:
    slots = template.slots(kind)
    if template.named:
        if not isinstance(given or {}, dict):
            raise OutreachError(
                f"template {template.name} has named parameters: give {kind} as an object",
                code="parameter_mismatch",
            )
        mapping: dict[str, str] = dict(given or {})
        if sorted(mapping) != sorted(slots):
            raise OutreachError(
                f"{kind}: the template needs parameters {slots}, got {sorted(mapping)}",
                code="parameter_mismatch",
                details=[{"component": kind, "expected": slots, "given": sorted(mapping)}],
            )
        return [(slot, mapping[slot]) for slot in slots]
    if isinstance(given, dict):
        raise OutreachError(
            f"template {template.name} has positional parameters: give {kind} as a list",
            code="parameter_mismatch",
        )
    values: list[str] = list(given or [])
    if len(values) != len(slots):
        raise OutreachError(
            f"{kind}: the template needs {len(slots)} parameters, got {len(values)}",
            code="parameter_mismatch",
            details=[{"component": kind, "expected": len(slots), "given": len(values)}],
        )
    return [(None, value) for value in values]


def check_parameters(template: Template, parameters: ParameterMap) -> None:
    """Raise :class:`OutreachError` unless ``parameters`` fit the template's slots."""
    if template.media_header is not None:
        raise OutreachError(
            f"template {template.name} has a {template.media_header} header, which campaigns "
            "do not support yet",
            code="unsupported_template",
        )
    _specs(template, "header", parameters.header)
    _specs(template, "body", parameters.body)


@dataclass(frozen=True)
class Rendered:
    components: list[dict[str, Any]]
    missing: list[str]


def render(template: Template, parameters: ParameterMap, fields: Mapping[str, str]) -> Rendered:
    """The send components for one contact (as JSON), and the fields it lacks."""
    components: list[dict[str, Any]] = []
    missing: list[str] = []
    for kind, given in (("header", parameters.header), ("body", parameters.body)):
        specs = _specs(template, kind, given)  # type: ignore[arg-type]
        if not specs:
            continue
        params = []
        for slot, spec in specs:
            text, lacking = render_value(spec, fields)
            missing.extend(lacking)
            params.append({"type": "text", "text": text or "-", "parameter_name": slot})
        components.append({"type": kind, "parameters": params})
    return Rendered(components, list(dict.fromkeys(missing)))


def content(template: Template, components: list[dict[str, Any]]) -> TemplateContent:
    return TemplateContent(
        name=template.name,
        language=template.language,
        components=[
            TemplateComponent(
                type=c["type"],
                parameters=[
                    TemplateParameter(
                        type="text", text=p["text"], parameter_name=p.get("parameter_name")
                    )
                    for p in c["parameters"]
                ],
            )
            for c in components
        ],
    )


def preview(template: Template, components: list[dict[str, Any]]) -> str:
    """The text the customer would read (header and body, parameters filled in)."""
    out: list[str] = []
    kinds: tuple[ComponentKind, ...] = ("header", "body")
    for kind in kinds:
        text = template.text(kind)
        given: list[dict[str, Any]] = next(
            (c["parameters"] for c in components if c["type"] == kind), []
        )
        by_slot = {
            (p.get("parameter_name") or str(n)): p["text"] for n, p in enumerate(given, start=1)
        }
        if text:
            out.append(PLACEHOLDER.sub(_filler(by_slot), text))
    return "\n".join(out)


def _filler(values: dict[str, str]) -> Callable[[re.Match[str]], str]:
    return lambda m: values.get(m.group(1), m.group(0))
