"""The sandbox's in-memory world: business numbers, Twilio accounts, customers, the
ledger of sends, inbound messages, and per-number faults. It stands in for Meta and
Twilio, so in-memory state is the point; ``DELETE /sandbox/state`` clears it."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Provider = Literal["meta", "twilio"]
DIGITS = re.compile(r"\D")
STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}


def wa_id_of(to: str) -> str:
    """A phone number's digits: WhatsApp's ``wa_id`` of ``+234 801 …``."""
    return DIGITS.sub("", to)


#: A business-scoped user id (BSUID) or a parent BSUID, as FlowChat's contracts accept it.
BSUID = re.compile(r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$")
#: Country of a phone number by its calling code (longest prefix first), for BSUIDs'
#: ``CC.`` prefix; anything else is ``US``.
CALLING_CODES = (
    ("234", "NG"), ("254", "KE"), ("233", "GH"), ("971", "AE"), ("966", "SA"),
    ("91", "IN"), ("44", "GB"), ("49", "DE"), ("33", "FR"), ("34", "ES"), ("39", "IT"),
    ("55", "BR"), ("52", "MX"), ("62", "ID"), ("27", "ZA"), ("20", "EG"), ("1", "US"),
)  # fmt: skip


def country_of(wa_id: str) -> tuple[str, str]:
    """``(ISO country code, calling code)`` of a phone number (``US``/``1`` if unknown)."""
    for code, country in CALLING_CODES:
        if wa_id.startswith(code):
            return country, code
    return "US", "1"


def mint_bsuid(wa_id: str, generation: int = 0, *, parent: bool = False) -> str:
    """A BSUID for the person behind ``wa_id``: ``CC.`` + 20 digits (Meta's published
    examples are all digits after the dot, and pywa recognises only those), stable for a
    phone number and ``generation`` (a new one after a user-id change)."""
    seed = f"{'parent' if parent else 'user'}:{wa_id}:{generation}".encode()
    digits = int.from_bytes(hashlib.sha256(seed).digest()[:9], "big") % 10**20
    return f"{country_of(wa_id)[0]}.{'ENT.' if parent else ''}{digits:020d}"


def new_wamid(wa_id: str) -> str:
    """A WhatsApp-looking message id: ``wamid.`` + base64 of the recipient and a unique id."""
    raw = b"\x15\x02\x00\x11\x18\x12" + wa_id.encode() + uuid.uuid4().hex.upper().encode()
    return "wamid." + base64.b64encode(raw).decode()


def new_twilio_sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass
class Number:
    phone_number_id: str
    waba_id: str
    display_phone_number: str
    access_token: str
    app_secret: str
    webhook_url: str
    throughput_mps: int = 80
    verified_name: str = "FlowChat Sandbox"
    quality_rating: str = "GREEN"
    messaging_limit_tier: str = "TIER_1K"
    #: When the number was added (``last_onboarded_time``).
    registered_at: float = field(default_factory=time.time)
    profile: dict[str, Any] = field(
        default_factory=lambda: {
            "about": "",
            "address": "",
            "description": "",
            "email": "",
            "profile_picture_url": "",
            "websites": [],
            "vertical": "OTHER",
            "messaging_product": "whatsapp",
        }
    )

    def public(self) -> dict[str, Any]:
        """What the control API shows: never the token or the app secret."""
        out = asdict(self)
        del out["access_token"], out["app_secret"], out["profile"]
        return out


@dataclass
class TwilioAccount:
    account_sid: str
    auth_token: str
    number: str
    webhook_url: str
    throughput_mps: int = 80

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        del out["auth_token"]
        return out


@dataclass
class Customer:
    """A WhatsApp user. Every one has a phone number (``wa_id``, the sandbox's key for the
    person) and a business-scoped user id (``user_id``); one with a username may hide the
    phone (``phone_hidden``), and then Meta's webhooks name them by BSUID alone."""

    wa_id: str
    name: str = "Sandbox Customer"
    #: The BSUID (``CC.`` + digits), minted from the phone number; changes on request.
    user_id: str = ""
    #: The parent BSUID (``CC.ENT.`` + digits), only when ``parent`` is on.
    parent_user_id: str | None = None
    #: Parent BSUIDs are enabled for this business: webhooks carry the parent id too.
    parent: bool = False
    #: The user's WhatsApp username (``profile.username`` in webhooks), if any.
    username: str | None = None
    #: The user has a username and hides the phone: webhooks omit ``wa_id``/``from``.
    phone_hidden: bool = False
    #: How many times the BSUID changed (``user_changed_user_id``).
    user_id_generation: int = 0
    #: Not a WhatsApp user: sends are accepted, then fail (131026 / Twilio 63024).
    undeliverable: bool = False
    #: Stopped marketing messages: marketing templates fail with 131050.
    opted_out_marketing: bool = False
    #: The phone is on: messages reach ``delivered``.
    delivers: bool = True
    #: The customer opens messages: ``read`` follows ``delivered``.
    reads: bool = True
    #: Status webhooks arrive out of order: ``read`` is posted before ``delivered``.
    out_of_order_statuses: bool = False
    #: Every status of a message comes in one webhook (``statuses`` with several items).
    batch_statuses: bool = False

    def __post_init__(self) -> None:
        if not self.user_id:
            self.user_id = mint_bsuid(self.wa_id, self.user_id_generation)
        if self.parent and not self.parent_user_id:
            self.parent_user_id = mint_bsuid(self.wa_id, self.user_id_generation, parent=True)
        if not self.parent:
            self.parent_user_id = None

    @property
    def ids(self) -> tuple[str, ...]:
        """Every id the person answers to: the phone, the BSUID, the parent BSUID."""
        return tuple(i for i in (self.wa_id, self.user_id, self.parent_user_id) if i)

    def contact(self, *, username: bool = True, name: bool = True) -> dict[str, Any]:
        """The person as a webhook's ``contacts[]`` item (Meta's current shape)."""
        profile: dict[str, Any] = {}
        if name:
            profile["name"] = self.name
        if username and self.username:
            profile["username"] = self.username
        out: dict[str, Any] = {"profile": profile} if profile else {}
        if not self.phone_hidden:
            out["wa_id"] = self.wa_id
        out["user_id"] = self.user_id
        if self.parent_user_id:
            out["parent_user_id"] = self.parent_user_id
        return out

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Faults:
    """Per number (phone_number_id or Twilio account SID) injected failures."""

    #: Added to every send request.
    latency_ms: int = 0
    #: Probability of answering with HTTP ``error_status`` (a transient Meta error, code 2).
    error_rate: float = 0.0
    error_status: int = 500
    #: Probability of holding the request ``fault_timeout_s`` and then answering 504.
    timeout_rate: float = 0.0
    #: The next ``error_count`` sends fail with Meta code ``error_code`` (-1: all of them).
    error_code: int | None = None
    error_count: int = 0
    #: The next ``drop_webhooks`` webhooks are not sent (-1: all of them).
    drop_webhooks: int = 0
    #: Each webhook is posted twice (Meta delivers at least once).
    duplicate_webhooks: bool = False
    #: Every status webhook of this number: ``read`` before ``delivered``.
    out_of_order_statuses: bool = False
    #: Every status webhook of this number: all of a message's statuses in one POST.
    batch_statuses: bool = False

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sent:
    """One accepted send: the ledger's row, and the business side of a transcript."""

    id: str
    provider: Provider
    channel: str
    to: str
    wa_id: str
    type: str
    body: Any
    category: str
    at: float
    biz_opaque_callback_data: str | None = None
    #: Set when the message will fail after acceptance: (code, title, details).
    fate: tuple[int, str, str] | None = None
    #: The BSUID (or parent BSUID) the send addressed with ``recipient``, else None.
    recipient: str | None = None
    statuses: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        """The furthest status reached (webhooks may have told it out of order)."""
        if not self.statuses:
            return "accepted"
        return str(max(self.statuses, key=lambda s: STATUS_RANK.get(s["status"], 0))["status"])

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "wamid" if self.provider == "meta" else "sid": self.id,
            "provider": self.provider,
            "phone_number_id" if self.provider == "meta" else "from": self.channel,
            "to": self.to,
            "recipient": self.recipient,
            "wa_id": self.wa_id,
            "type": self.type,
            "category": self.category,
            "body": self.body,
            "biz_opaque_callback_data": self.biz_opaque_callback_data,
            "time": iso(self.at),
            "timestamp": self.at,
            "status": self.status,
            "statuses": self.statuses,
            "errors": self.errors,
        }


@dataclass
class Inbound:
    """One message a customer wrote."""

    id: str
    provider: Provider
    channel: str
    wa_id: str
    type: str
    message: dict[str, Any]
    at: float
    read: bool = False
    delivery_id: int | None = None


def summary(kind: str, content: dict[str, Any]) -> str:
    """A one-line human reading of a message, for transcripts."""
    part = content.get(kind)
    if kind == "text" and isinstance(part, dict):
        return str(part.get("body", ""))
    if kind == "interactive" and isinstance(part, dict):
        for reply in ("button_reply", "list_reply"):
            if reply in part:
                return str(part[reply].get("title", ""))
        return str((part.get("body") or {}).get("text", ""))
    if kind == "template" and isinstance(part, dict):
        return f"[template {part.get('name')}]"
    if kind == "button" and isinstance(part, dict):
        return str(part.get("text", ""))
    if isinstance(part, dict):
        return str(part.get("caption") or part.get("body") or f"[{kind}]")
    return f"[{kind}]"
