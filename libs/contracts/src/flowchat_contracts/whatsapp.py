"""WhatsApp Cloud API facts shared by the services and the sandbox (pure, no I/O).

Source: ``/work/shared/reference/whatsapp-cloud-api.md``.

- §5 Media: the MIME types WhatsApp takes, the kind each one is, and the largest file
  of that kind (:data:`MEDIA_TYPES`; stickers are 100 KB static, 500 KB animated).
- §6 Templates: a ``message_templates`` item (:class:`TemplateDefinition`), its
  statuses and categories, and its parameters: positional (``{{1}}``) or named
  (``{{first_name}}``, ``parameter_format: NAMED``, each parameter then carries a
  ``parameter_name``); the count (132000) and the format (132012) of a send's
  parameters must match the template (:func:`parameter_mismatch`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

# --------------------------------------------------------------------- §5 media

KB = 1024
MB = 1024 * KB

MediaKind = Literal["image", "video", "audio", "document", "sticker"]

STICKER_STATIC_MAX = 100 * KB
STICKER_ANIMATED_MAX = 500 * KB

#: The reference's table: kind, largest file in bytes, MIME types.
_MEDIA_TABLE: tuple[tuple[MediaKind, int, tuple[str, ...]], ...] = (
    ("audio", 16 * MB, ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg")),
    (
        "document",
        100 * MB,
        (
            "text/plain",
            "application/pdf",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
    ),
    ("image", 5 * MB, ("image/jpeg", "image/png")),
    ("sticker", STICKER_ANIMATED_MAX, ("image/webp",)),
    ("video", 16 * MB, ("video/mp4", "video/3gpp")),
)
#: MIME type → (kind, largest file in bytes); ``image/webp`` (stickers) at the animated
#: limit: a static sticker may be at most :data:`STICKER_STATIC_MAX`.
MEDIA_TYPES: Mapping[str, tuple[MediaKind, int]] = {
    mime: (kind, limit) for kind, limit, mimes in _MEDIA_TABLE for mime in mimes
}
#: The largest file of any kind.
MAX_MEDIA_BYTES = max(limit for _, limit in MEDIA_TYPES.values())


def normalize_mime(value: str | None) -> str:
    """``image/jpeg; charset=x`` → ``image/jpeg`` (``None`` → ``""``)."""
    return (value or "").split(";", 1)[0].strip().lower()


# --------------------------------------------------------------------- §6 templates

TEMPLATE_STATUSES = frozenset(
    {
        "APPROVED",
        "PENDING",
        "REJECTED",
        "PAUSED",
        "DISABLED",
        "IN_APPEAL",
        "PENDING_DELETION",
        "DELETED",
        "LIMIT_EXCEEDED",
    }
)
TEMPLATE_CATEGORIES = frozenset({"MARKETING", "UTILITY", "AUTHENTICATION"})

#: A ``{{1}}`` or ``{{first_name}}`` placeholder in a template's text or URL.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def placeholders(text: str | None) -> list[str]:
    """The placeholder names in ``text``, each once, in order of appearance."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text or "")))


ParameterMismatch = Literal["count", "unnamed", "names", "named_positional"]


def parameter_mismatch(
    slots: Sequence[str], names: Sequence[str | None], *, named: bool
) -> ParameterMismatch | None:
    """How a component's parameters (their ``parameter_name`` s) miss its ``slots``.

    ``count``: not as many parameters as placeholders (Meta: 132000). Then, 132012:
    ``unnamed``: a named template's parameter without a name; ``names``: the names are
    not the template's; ``named_positional``: a positional template's parameter has a
    name. ``None``: they fit.
    """
    if len(names) != len(slots):
        return "count"
    if named:
        if any(n is None for n in names):
            return "unnamed"
        if sorted(str(n) for n in names) != sorted(slots):
            return "names"
        return None
    if any(n is not None for n in names):
        return "named_positional"
    return None


@dataclass(frozen=True)
class TemplateDefinition:
    """One item of ``GET /{waba_id}/message_templates`` (names and codes upper-cased)."""

    #: The category of an item that has none.
    DEFAULT_CATEGORY: ClassVar[str] = ""

    name: str
    language: str
    status: str
    category: str
    parameter_format: str
    components: tuple[Mapping[str, Any], ...]

    @classmethod
    def from_graph(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            name=str(data.get("name", "")),
            language=str(data.get("language", "")),
            status=str(data.get("status", "")).upper(),
            category=str(data.get("category", cls.DEFAULT_CATEGORY)).upper(),
            parameter_format=str(data.get("parameter_format") or "POSITIONAL").upper(),
            components=tuple(c for c in data.get("components") or [] if isinstance(c, dict)),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "parameter_format": self.parameter_format,
            "components": list(self.components),
        }

    @property
    def named(self) -> bool:
        return self.parameter_format == "NAMED"

    def component(self, kind: str) -> Mapping[str, Any] | None:
        """The first component of ``kind`` (``HEADER``, ``BODY``, … any case), or None."""
        for c in self.components:
            if str(c.get("type", "")).upper() == kind.upper():
                return c
        return None
