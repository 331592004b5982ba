"""The console's logic, free of HTTP and templates: turning the services' answers into
what a page shows (view models), and the rules a page applies before it calls a service.
Pages (``pages/*``) fetch through :class:`~flowchat_console.ports.Api` and render these."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return None
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    return None


@dataclass(frozen=True)
class Window:
    """The 24 h customer-service window of a thread: free-form replies while open, only
    templates once closed."""

    open: bool
    closes_at: datetime | None

    def seconds_left(self, now: datetime) -> float | None:
        if not self.open or self.closes_at is None:
            return None
        return max((self.closes_at - now).total_seconds(), 0.0)


def window_of(body: dict[str, Any]) -> Window:
    """From a thread or conversation answer (``window_open``, ``window_closes_at``); unknown
    counts as closed (templates always work)."""
    return Window(
        open=bool(body.get("window_open")), closes_at=parse_time(body.get("window_closes_at"))
    )


def seconds_since(value: Any, now: datetime) -> float | None:
    at = parse_time(value)
    return None if at is None else max((now - at).total_seconds(), 0.0)


# --- the inbox -------------------------------------------------------------------------

#: The inbox's lists (``GET /v1/conversations?view=``), in the order the tabs show them.
VIEWS: dict[str, str] = {
    "waiting": "Waiting",
    "mine": "Mine",
    "unassigned": "Unassigned",
    "open": "All open",
    "resolved": "Resolved",
}
DEFAULT_VIEW = "waiting"


def view_of(value: str | None) -> str:
    return value if value in VIEWS else DEFAULT_VIEW


@dataclass(frozen=True)
class Customer:
    """Who a thread is with, as the console shows them (name, else number, else id)."""

    label: str
    wa_id: str | None = None

    @classmethod
    def of(cls, thread: dict[str, Any] | None) -> Customer:
        if not thread:
            return cls("Customer")
        wa_id = thread.get("wa_id")
        name = thread.get("customer_name")
        label = name or (f"+{wa_id}" if wa_id else None) or thread.get("user_id") or "Customer"
        return cls(str(label), wa_id)


@dataclass(frozen=True)
class ConversationRow:
    id: int
    thread_id: int
    status: str
    assignee: str | None
    assignee_label: str | None
    customer: Customer
    reason: str | None
    #: Waiting for a first answer: since it opened; else since it opened too (age).
    waiting_s: float | None
    waiting: bool
    mine: bool
    tags: tuple[str, ...]


def conversation_row(
    c: dict[str, Any],
    thread: dict[str, Any] | None,
    *,
    me: str,
    people: dict[str, str],
    now: datetime,
) -> ConversationRow:
    assignee = c.get("assignee")
    waiting = c.get("first_response_at") is None and c.get("status") != "resolved"
    return ConversationRow(
        id=int(c["id"]),
        thread_id=int(c["thread_id"]),
        status=str(c.get("status", "")),
        assignee=assignee,
        assignee_label=None if assignee is None else people.get(assignee, assignee),
        customer=Customer.of(thread),
        reason=c.get("reason"),
        waiting_s=seconds_since(c.get("opened_at"), now),
        waiting=waiting,
        mine=assignee is not None and assignee == me,
        tags=tuple(c.get("tags") or ()),
    )


@dataclass(frozen=True)
class Media:
    kind: str
    caption: str | None
    filename: str | None
    #: An https link to open in a new tab (media sent by link, shown as it was sent).
    link: str | None
    mime_type: str | None
    #: How the provider names the file for a download through the sender: ``("id",
    #: media id)`` (Cloud API) or ``("url", MediaUrl)`` (a Twilio customer's); else None.
    ref: tuple[str, str] | None = None
    #: ``image``, ``audio``, ``video`` (shown inline) or ``download`` (:func:`media_display`).
    display: str = "download"
    #: The console's own URL of the file (``/media/…``, signed), when it can be fetched.
    src: str | None = None


@dataclass(frozen=True)
class MessageView:
    id: int
    side: str  # "in" (customer), "out" (bot, agent, campaign…), "note" (internal)
    author: str
    author_label: str
    type: str
    text: str | None
    media: Media | None
    #: Interactive choices offered (buttons, list rows) or, inbound, the one chosen.
    choices: tuple[str, ...]
    chosen: str | None
    template: str | None
    template_params: tuple[str, ...]
    status: str | None
    error_code: int | None
    at: datetime | None


AUTHOR_LABELS = {
    "customer": "Customer",
    "bot": "Bot",
    "campaign": "Campaign",
    "reminder": "Reminder",
    "api": "API",
}
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")


#: What a browser shows inline, by MIME type (WhatsApp's image, sticker, audio and video
#: types: reference §5); every other file is offered as a download.
INLINE_MEDIA: dict[str, str] = {
    "image/jpeg": "image",
    "image/png": "image",
    "image/webp": "image",
    "audio/aac": "audio",
    "audio/amr": "audio",
    "audio/mp4": "audio",
    "audio/mpeg": "audio",
    "audio/ogg": "audio",
    "video/mp4": "video",
    "video/3gpp": "video",
}
#: A Twilio MediaUrl (``…/2010-04-01/Accounts/AC…/Messages/MM…/Media/ME…``).
_TWILIO_MEDIA_URL = re.compile(
    r"^https?://[^/]+(/[^?#]*)?/2010-04-01/Accounts/AC\w+/Messages/\w+/Media/\w+$"
)


def media_display(kind: str, mime_type: str | None) -> str:
    """``image``, ``audio`` or ``video`` (inline) or ``download``: by the MIME type when
    known, else by the message's kind; documents are always downloads."""
    if kind == "document":
        return "download"
    mime = (mime_type or "").split(";", 1)[0].strip().lower()
    if mime:
        return INLINE_MEDIA.get(mime, "download")
    return {"image": "image", "sticker": "image", "audio": "audio", "video": "video"}.get(
        kind, "download"
    )


def served_as(content_type: str) -> tuple[str, bool]:
    """How the console answers a file the sender typed ``content_type``: the type and
    whether it may be shown inline (only :data:`INLINE_MEDIA`; the rest is an attachment)."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in INLINE_MEDIA:
        return mime, True
    return mime or "application/octet-stream", False


def _media_ref(raw: dict[str, Any], inbound: bool) -> tuple[str, str] | None:
    media_id = raw.get("id")
    if isinstance(media_id, str) and media_id:
        return ("id", media_id)
    link = raw.get("link")
    if inbound and isinstance(link, str) and _TWILIO_MEDIA_URL.match(link):
        return ("url", link)
    return None


def _media(content: dict[str, Any], type_: str, *, inbound: bool) -> Media | None:
    raw = content.get("media") if isinstance(content.get("media"), dict) else None
    if raw is None and type_ in MEDIA_TYPES:
        raw = content
    if not raw:
        return None
    kind = str(raw.get("type") or type_)
    ref = _media_ref(raw, inbound)
    link = raw.get("link") if str(raw.get("link", "")).startswith("https://") else None
    return Media(
        kind=kind,
        caption=raw.get("caption"),
        filename=raw.get("filename"),
        link=None if ref is not None else link,
        mime_type=raw.get("mime_type"),
        ref=ref,
        display=media_display(kind, raw.get("mime_type")),
    )


class MediaLinks:
    """The console's URLs of provider media, signed for one tenant and number:
    ``/media/{account}?id=…&sig=…`` (or ``url=`` a Twilio MediaUrl). A page makes them
    from messages the inbox gave the user; the media route accepts only a signature made
    for the tenant of the session asking, so a URL of tenant A is worthless to a user
    of tenant B, and no one can name media their pages never showed them."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def signature(self, tenant_id: str, account_id: str, by: str, ref: str) -> str:
        message = "\x1f".join((tenant_id, account_id, by, ref)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def valid(self, tenant_id: str, account_id: str, by: str, ref: str, sig: str) -> bool:
        return hmac.compare_digest(self.signature(tenant_id, account_id, by, ref), sig)

    def src(self, tenant_id: str, account_id: str, media: Media) -> str | None:
        if media.ref is None or not account_id:
            return None
        by, ref = media.ref
        query = {by: ref, "sig": self.signature(tenant_id, account_id, by, ref)}
        if media.display == "download" and media.filename:
            query["name"] = media.filename
        return f"/media/{quote(account_id, safe='')}?{urlencode(query)}"

    def sources(self, tenant_id: str, account_id: str) -> Callable[[Media], str | None]:
        """:meth:`src` for one thread (``message_view``'s ``media_src``)."""
        return lambda media: self.src(tenant_id, account_id, media)


def _choices(content: dict[str, Any]) -> tuple[str, ...]:
    if isinstance(content.get("buttons"), list):
        return tuple(str(b.get("title", "")) for b in content["buttons"] if isinstance(b, dict))
    out: list[str] = []
    for section in content.get("sections") or []:
        if isinstance(section, dict):
            for row in section.get("rows") or []:
                if isinstance(row, dict):
                    out.append(str(row.get("title", "")))
    return tuple(out)


def _template(content: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    if content.get("type") != "template":
        return None, ()
    params: list[str] = []
    for component in content.get("components") or []:
        if isinstance(component, dict):
            for p in component.get("parameters") or []:
                if isinstance(p, dict):
                    value = p.get("text") or p.get("payload") or p.get("fallback_value")
                    if value is not None:
                        params.append(str(value))
    return f"{content.get('name')} ({content.get('language')})", tuple(params)


def message_view(
    m: dict[str, Any],
    people: dict[str, str],
    media_src: Callable[[Media], str | None] | None = None,
) -> MessageView:
    """A message as the thread shows it (``media_src``: the console's URL of its media,
    :meth:`MediaLinks.sources`)."""
    content = m.get("content") if isinstance(m.get("content"), dict) else {}
    assert isinstance(content, dict)
    direction = m.get("direction")
    type_ = str(m.get("type") or content.get("type") or "text")
    side = (
        "note"
        if type_ == "note" or direction == "internal"
        else ("in" if direction == "inbound" else "out")
    )
    author = str(m.get("author") or "")
    agent = m.get("agent_id")
    if author == "agent":
        label = people.get(agent, "Agent") if agent else "Agent"
    else:
        label = AUTHOR_LABELS.get(author, author.title() or "Unknown")
    reply = content.get("reply") if isinstance(content.get("reply"), dict) else None
    template, params = _template(content)
    media = _media(content, type_, inbound=side == "in")
    if media is not None and media_src is not None:
        media = replace(media, src=media_src(media))
    text = m.get("text")
    if text is None and isinstance(content.get("text"), str):
        text = content["text"]
    if media is not None and media.caption:
        # a media message's text is its caption (the inbox's text joins it in again)
        text = media.caption
    return MessageView(
        id=int(m.get("id", 0)),
        side=side,
        author=author,
        author_label=label,
        type=type_,
        text=text,
        media=media,
        choices=_choices(content),
        chosen=str(reply.get("title")) if reply and reply.get("title") else None,
        template=template,
        template_params=params,
        status=m.get("status"),
        error_code=m.get("error_code"),
        at=parse_time(m.get("occurred_at")),
    )


# --- replies ---------------------------------------------------------------------------

MAX_TEMPLATE_PARAMS = 10


def text_reply(body: str) -> dict[str, Any]:
    return {"type": "text", "body": body}


def template_reply(
    name: str, language: str, params: list[str], names: list[str] | None = None
) -> dict[str, Any]:
    """A template message with its body parameters in order (``{{1}}``, ``{{2}}``…; with
    ``names``, a named template's ``{{first_name}}``…); empty trailing fields are dropped."""
    values = list(params[:MAX_TEMPLATE_PARAMS])
    while values and not values[-1].strip():
        values.pop()
    named = list(names or [])
    parameters: list[dict[str, Any]] = []
    for i, v in enumerate(values):
        param: dict[str, Any] = {"type": "text", "text": v}
        if i < len(named):
            param["parameter_name"] = named[i]
        parameters.append(param)
    components = [{"type": "body", "parameters": parameters}] if parameters else []
    return {
        "type": "template",
        "name": name.strip(),
        "language": language.strip() or "en",
        "components": components,
    }


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


@dataclass(frozen=True)
class TemplateChoice:
    """An approved template the reply box offers: its body and its parameters' fields."""

    name: str
    language: str
    body: str
    #: The placeholders in order: ``("1", "2")`` or a named template's ``("first_name",)``.
    params: tuple[str, ...]
    named: bool

    @property
    def key(self) -> str:
        """The picker's value: ``name|language``."""
        return f"{self.name}|{self.language}"


def template_choices(items: list[dict[str, Any]]) -> list[TemplateChoice]:
    """The catalog's approved templates (by name, language) with their placeholders."""
    out = []
    for t in items:
        if str(t.get("status", "")).upper() != "APPROVED" or not t.get("name"):
            continue
        body = str(t.get("body") or "")
        found = list(dict.fromkeys(_PLACEHOLDER.findall(body)))
        named = str(t.get("parameter_format", "")).upper() == "NAMED" or not all(
            p.isdigit() for p in found
        )
        params = found if named else [str(i) for i in range(1, max(map(int, found), default=0) + 1)]
        out.append(
            TemplateChoice(
                name=str(t["name"]),
                language=str(t.get("language") or "en"),
                body=body,
                params=tuple(params[:MAX_TEMPLATE_PARAMS]),
                named=named,
            )
        )
    return sorted(out, key=lambda c: (c.name, c.language))


def choose_template(choices: list[TemplateChoice], key: str | None) -> TemplateChoice | None:
    """The picked template (``name|language``), else the first."""
    return next((c for c in choices if c.key == key), choices[0] if choices else None)


# --- CSV imports -----------------------------------------------------------------------


def shift_report(report: dict[str, Any], offset: int) -> dict[str, Any]:
    """An import report of one part of a file (its header, then rows ``offset + 1``…) with
    the rejected rows' line numbers as in the whole file."""
    rejected = [
        {**r, "line": int(r.get("line") or 0) + offset} for r in report.get("rejected") or []
    ]
    return {**report, "rejected": rejected}


def merge_reports(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The parts' reports of one file as one."""
    total: dict[str, Any] = {"received": 0, "imported": 0, "created": 0, "updated": 0}
    total["opt_out_kept"] = 0
    rejected: list[dict[str, Any]] = []
    for part in parts:
        for key in ("received", "imported", "created", "updated", "opt_out_kept"):
            total[key] += int(part.get(key) or 0)
        rejected.extend(part.get("rejected") or [])
    total["rejected"] = sorted(rejected, key=lambda r: int(r.get("line") or 0))
    return total


# --- search ----------------------------------------------------------------------------


def highlight(text: str | None, query: str, *, limit: int = 240) -> list[tuple[str, bool]]:
    """``text`` cut around the first match of any word of ``query``, as (piece, is_match)
    pairs: templates mark the matches without building HTML from strings."""
    if not text:
        return []
    words = [w.lower() for w in query.split() if len(w) >= 2]
    lowered = text.lower()
    first = min((i for w in words if (i := lowered.find(w)) >= 0), default=0)
    start = max(first - limit // 3, 0)
    snippet = text[start : start + limit]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + limit < len(text) else ""
    pieces: list[tuple[str, bool]] = []
    low = snippet.lower()
    i = 0
    while i < len(snippet):
        hit = min(
            ((j, w) for w in words if (j := low.find(w, i)) >= 0),
            default=None,
        )
        if hit is None:
            pieces.append((snippet[i:], False))
            break
        j, w = hit
        if j > i:
            pieces.append((snippet[i:j], False))
        pieces.append((snippet[j : j + len(w)], True))
        i = j + len(w)
    if prefix:
        pieces.insert(0, (prefix, False))
    if suffix:
        pieces.append((suffix, False))
    return pieces
