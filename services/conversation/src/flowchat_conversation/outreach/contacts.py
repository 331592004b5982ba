"""Contacts of a tenant: who may be messaged first, and segments of them.

The domain, no I/O: the values (what the API takes and shows, what crosses the
:class:`~flowchat_conversation.outreach.ports.ContactStore` port) and the CSV rules. The
service is :class:`~flowchat_conversation.outreach.contact_service.ContactsService`.

- **Phone numbers** are stored as WhatsApp ids (E.164 digits, no ``+``: the bot's
  ``customer_wa_id``) and shown as E.164 (``+2348012345678``); input is parsed with
  ``phonenumbers`` (a number without ``+`` needs a default region).
- **Customers without a visible phone number** are named by their BSUID
  (``US.1349…``): ``phone`` may hold a BSUID instead (told apart by its pattern), and
  ``user_id`` (CSV: a ``user_id`` or ``bsuid`` column) names the BSUID beside a phone
  number; both are then linked to one customer (``customer_aliases``, see
  :mod:`flowchat_conversation.customers`), found by either id.
- **Marketing opt-in** records its source and time: ``keyword`` (STOP/START to the
  bot), ``webhook`` (Meta's ``user_marketing_preferences``), ``error_131050`` (Meta
  refused a marketing message because the user stopped them), ``api``, ``import``.
  An import never opts back in a customer who opted out themselves. Every change is
  mirrored to the Redis opt-out set the sender's guard reads
  (:mod:`~flowchat_conversation.outreach.redis_optouts`), with the state PostgreSQL
  ended up holding.
- **Segments** select by status, tags (all / any), groups (any), attribute equality,
  opt-in and free text (name or phone).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flowchat_contracts import CustomerIdentity
from flowchat_contracts.models import Bsuid
from flowchat_conversation.customers import identity_for, looks_like_bsuid
from flowchat_conversation.errors import ContactCsvError
from flowchat_platform.phones import to_wa_id

ContactStatus = Literal["active", "inactive", "blocked"]
OptInSource = Literal["default", "keyword", "webhook", "error_131050", "api", "import"]
#: Opt-outs the customer made themselves: an import or a default never overrides them.
CUSTOMER_SOURCES = frozenset({"keyword", "webhook", "error_131050"})

Label = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
AttrKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
MAX_CSV_ROWS = 100_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(BaseModel):
    """A contact as the API shows it."""

    contact_id: int
    #: E.164 (``+…``); None for a customer known only by a BSUID.
    phone: str | None
    #: The customer key: the phone digits, or the BSUID for a customer who came by one.
    wa_id: str
    #: The BSUID, when known.
    user_id: str | None = None
    name: str | None
    status: ContactStatus
    tags: list[str]
    groups: list[str]
    attributes: dict[str, Any]
    marketing_opt_in: bool
    opt_in_source: str
    opt_in_changed_at: datetime | None
    last_inbound_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ContactIn(_Model):
    """A contact to create or update (matched by phone or BSUID)."""

    #: A phone number, or a BSUID for a customer who hides the number.
    phone: Annotated[str, StringConstraints(min_length=3, max_length=140)]
    #: The BSUID beside a phone number (both are linked to one customer).
    user_id: Bsuid | None = None
    name: Annotated[str, StringConstraints(max_length=256)] | None = None
    status: ContactStatus | None = None
    tags: list[Label] | None = Field(default=None, max_length=100)
    groups: list[Label] | None = Field(default=None, max_length=100)
    attributes: dict[AttrKey, str | int | float | bool | None] | None = None
    marketing_opt_in: bool | None = None


class ContactPatch(_Model):
    name: Annotated[str, StringConstraints(max_length=256)] | None = None
    status: ContactStatus | None = None
    tags: list[Label] | None = Field(default=None, max_length=100)
    groups: list[Label] | None = Field(default=None, max_length=100)
    attributes: dict[AttrKey, str | int | float | bool | None] | None = None


class MarketingPreference(_Model):
    opt_in: bool


class Segment(_Model):
    """Who a campaign (or a search) is for; every given condition must hold."""

    statuses: list[ContactStatus] | None = None
    tags_all: list[Label] = Field(default_factory=list, max_length=50)
    tags_any: list[Label] = Field(default_factory=list, max_length=50)
    groups_any: list[Label] = Field(default_factory=list, max_length=50)
    attributes: dict[AttrKey, str | int | float | bool] = Field(default_factory=dict)
    marketing_opt_in: bool | None = None
    #: Free text: a part of the name or of the phone number.
    q: Annotated[str, StringConstraints(max_length=100)] | None = None


@dataclass(frozen=True)
class NewContact:
    """A validated :class:`ContactIn`: phone normalized (or a BSUID)."""

    #: The phone digits or a BSUID (the repository stores the contact under the
    #: customer key this id, or ``user_id``, is linked to).
    wa_id: str
    name: str | None = None
    status: ContactStatus | None = None
    tags: list[str] | None = None
    groups: list[str] | None = None
    attributes: dict[str, Any] | None = None
    marketing_opt_in: bool | None = None
    #: The BSUID beside a phone number ``wa_id``.
    user_id: str | None = None

    @property
    def identity(self) -> CustomerIdentity:
        identity = identity_for(self.wa_id)
        if self.user_id and identity.user_id is None:
            return identity.model_copy(update={"user_id": self.user_id})
        return identity


def customer_id(value: str, default_region: str | None = None) -> str:
    """A phone number as WhatsApp id digits, or a BSUID as it is."""
    value = value.strip()
    if looks_like_bsuid(value):
        return value
    return to_wa_id(value, default_region)


@dataclass(frozen=True)
class UpsertCounts:
    created: int = 0
    updated: int = 0
    #: Rows that asked to opt in a customer who had opted out themselves (kept out).
    opt_out_kept: int = 0


@dataclass(frozen=True)
class RejectedRow:
    line: int
    phone: str
    errors: list[str]


@dataclass(frozen=True)
class ContactImport:
    received: int
    created: int
    updated: int
    opt_out_kept: int
    rejected: list[RejectedRow] = field(default_factory=list)


def to_new_contact(item: ContactIn, default_region: str | None = None) -> NewContact:
    return NewContact(
        wa_id=customer_id(item.phone, default_region),
        user_id=item.user_id,
        name=item.name.strip() or None if item.name is not None else None,
        status=item.status,
        tags=_unique(item.tags),
        groups=_unique(item.groups),
        attributes=dict(item.attributes) if item.attributes is not None else None,
        marketing_opt_in=item.marketing_opt_in,
    )


def _unique(items: list[str] | None) -> list[str] | None:
    return list(dict.fromkeys(items)) if items is not None else None


_TRUE = frozenset({"1", "true", "yes", "y", "on", "opted_in", "opt_in"})
_FALSE = frozenset({"0", "false", "no", "n", "off", "opted_out", "opt_out"})
_KNOWN = frozenset(
    {"phone", "user_id", "bsuid", "name", "status", "tags", "groups", "marketing_opt_in", "opt_in"}
)


def _split(value: str) -> list[str]:
    parts = [p.strip() for chunk in value.split("|") for p in chunk.split(";")]
    return list(dict.fromkeys(p for p in parts if p))


def _row_ids(
    raw_phone: str, raw_bsuid: str, default_region: str | None, errors: list[str]
) -> tuple[str, str | None]:
    """A row's ``(wa_id, user_id)``: the phone (or a BSUID in its place) and the BSUID
    of the ``user_id`` / ``bsuid`` column; a BSUID alone is the ``wa_id``."""
    wa_id = ""
    user_id: str | None = None
    if raw_bsuid and not looks_like_bsuid(raw_bsuid):
        errors.append(f"not a BSUID: {raw_bsuid!r}")
    elif raw_bsuid:
        user_id = raw_bsuid
    if raw_phone or not user_id:
        try:
            wa_id = customer_id(raw_phone, default_region)
        except ValueError as exc:
            errors.append(str(exc))
    if not wa_id and user_id:
        return user_id, None
    return wa_id, user_id


def parse_contacts_csv(  # noqa: PLR0912 - one flat check per column
    text: str, default_region: str | None = None
) -> tuple[list[tuple[int, NewContact]], list[RejectedRow]]:
    """Rows → contacts and a report of every rejected row (nothing dropped silently).

    Columns: ``phone`` and/or ``user_id`` (or ``bsuid``: a BSUID; a ``phone`` value
    that is a BSUID counts as one), ``name``, ``status``, ``tags`` and ``groups``
    (separated by ``;`` or ``|``), ``marketing_opt_in`` (yes/no); any other column is
    a custom attribute (``attributes.city`` or just ``city``). A phone repeated in the
    file rejects the later row.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    headers = [h.strip().lower() for h in reader.fieldnames or []]
    if not {"phone", "user_id", "bsuid"} & set(headers):
        raise ContactCsvError(
            "the CSV file needs a header row with a 'phone' (or 'user_id' / 'bsuid') column"
        )
    reader.fieldnames = headers
    good: list[tuple[int, NewContact]] = []
    rejected: list[RejectedRow] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(reader):
        line = reader.line_num
        if n >= MAX_CSV_ROWS:
            raise ContactCsvError(f"at most {MAX_CSV_ROWS} rows per file")
        raw_phone = (row.get("phone") or "").strip()
        raw_bsuid = (row.get("user_id") or row.get("bsuid") or "").strip()
        errors: list[str] = []
        if None in row:
            errors.append("more fields than headers")
        wa_id, user_id = _row_ids(raw_phone, raw_bsuid, default_region, errors)
        status = (row.get("status") or "").strip().lower() or None
        if status is not None and status not in ("active", "inactive", "blocked"):
            errors.append(f"status must be active, inactive or blocked, not {status!r}")
        opt_raw = (row.get("marketing_opt_in") or row.get("opt_in") or "").strip().lower()
        opt_in: bool | None = None
        if opt_raw in _TRUE:
            opt_in = True
        elif opt_raw in _FALSE:
            opt_in = False
        elif opt_raw:
            errors.append(f"marketing_opt_in must be yes or no, not {opt_raw!r}")
        attributes: dict[str, Any] = {}
        for key, value in row.items():
            if key is None or key in _KNOWN:
                continue
            name = key.removeprefix("attributes.").removeprefix("attr.")
            if value is not None and value.strip():
                attributes[name] = value.strip()
        if wa_id and wa_id in seen:
            errors.append(f"duplicate of line {seen[wa_id]}")
        if errors:
            rejected.append(RejectedRow(line=line, phone=raw_phone or raw_bsuid, errors=errors))
            continue
        seen[wa_id] = line
        name = (row.get("name") or "").strip() or None
        good.append(
            (
                line,
                NewContact(
                    wa_id=wa_id,
                    name=name,
                    status=status,  # type: ignore[arg-type]
                    tags=_split(row["tags"]) if row.get("tags") else None,
                    groups=_split(row["groups"]) if row.get("groups") else None,
                    attributes=attributes or None,
                    marketing_opt_in=opt_in,
                    user_id=user_id,
                ),
            )
        )
    return good, rejected
