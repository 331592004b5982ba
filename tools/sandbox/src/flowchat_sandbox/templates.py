"""Message templates: the send-time checks Meta makes, with its codes.

A template's HEADER (``format: TEXT`` with ``{{…}}`` placeholders, or a media
format) and BODY declare parameters; a send must give the same number (132000) in
the same format (132012): positional ``{{1}}`` parameters carry no
``parameter_name``, named ``{{first_name}}`` ones carry exactly the template's names.
Only APPROVED templates send; PAUSED → 132015, DISABLED → 132016, anything else or
missing in that language → 132001.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowchat_contracts.whatsapp import (
    TEMPLATE_CATEGORIES,
    TEMPLATE_STATUSES,
    parameter_mismatch,
    placeholders,
)
from flowchat_sandbox.errors import GraphError

STATUSES = TEMPLATE_STATUSES
CATEGORIES = TEMPLATE_CATEGORIES
MEDIA_FORMATS = frozenset({"IMAGE", "VIDEO", "DOCUMENT", "LOCATION"})


@dataclass
class Template:
    id: str
    waba_id: str
    name: str
    language: str
    status: str = "APPROVED"
    category: str = "UTILITY"
    parameter_format: str = "POSITIONAL"
    components: list[dict[str, Any]] = field(default_factory=list)

    def as_graph(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": self.components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        }


def _given(send: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    for component in send.get("components") or []:
        if str(component.get("type", "")).lower() == kind:
            params = component.get("parameters") or []
            return [p for p in params if isinstance(p, dict)]
    return []


def check_send(template: Template | None, send: dict[str, Any]) -> None:
    """Raise :class:`GraphError` as Meta would for this template send."""
    if template is None:
        raise GraphError(
            132001, f"template name ({send.get('name')}) does not exist in the translation"
        )
    if template.status == "PAUSED":
        raise GraphError(132015, f"Template {template.name} is paused.")
    if template.status == "DISABLED":
        raise GraphError(132016, f"Template {template.name} is disabled.")
    if template.status != "APPROVED":
        raise GraphError(132001, f"Template {template.name} is {template.status}, not approved.")
    named = template.parameter_format == "NAMED"
    for component in template.components:
        kind = str(component.get("type", "")).upper()
        if kind not in ("HEADER", "BODY"):
            continue
        given = _given(send, kind.lower())
        fmt = str(component.get("format", "TEXT")).upper()
        if kind == "HEADER" and fmt in MEDIA_FORMATS:
            if len(given) != 1:
                raise GraphError(132000, f"header: expected 1 {fmt.lower()} parameter.")
            if str(given[0].get("type", "")).upper() != fmt:
                raise GraphError(132012, f"header: expected a {fmt.lower()} parameter.")
            continue
        expected = placeholders(str(component.get("text", "")))
        mismatch = parameter_mismatch(
            expected, [p.get("parameter_name") for p in given], named=named
        )
        if mismatch == "count":
            raise GraphError(
                132000,
                f"{kind.lower()}: number of localizable_params ({len(given)}) does not match "
                f"the expected number of params ({len(expected)})",
            )
        if mismatch in ("unnamed", "names"):
            raise GraphError(
                132012, f"{kind.lower()}: expected named parameters {', '.join(expected)}."
            )
        if mismatch == "named_positional":
            raise GraphError(132012, f"{kind.lower()}: template expects positional parameters.")
