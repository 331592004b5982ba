"""Message templates: each WABA's catalog in Redis, and the checks a template send must pass.

::

    Graph GET /{version}/{waba_id}/message_templates (every page)
        └─▶ Redis hash flowchat:sender:templates:<tenant>:<waba>  (TTL 24 h)
               └─▶ this process's copy (``local_ttl_s``) ──▶ TemplateGuard.check

- A catalog is loaded once per WABA per process (single-flight: concurrent sends wait
  for the same load) and kept ``local_ttl_s`` in memory; Redis keeps it 24 h for every
  replica. Concurrent loads of different WABAs read Redis together, one pipeline of
  ``HGETALL`` per batch (:class:`~flowchat_platform.redis_batch.HashReads`): a fresh
  process meets every WABA at once.
- A miss (a template missing or not approved) against a catalog synced before the
  command was made may be a template approved since, with no webhook (yet): it
  triggers a fresh sync (single-flight per WABA, at most one per ``miss_sync_s``)
  before the command fails. When it is too soon for one, the command goes to a retry
  tier (:class:`~flowchat_sender.errors.SendRetry`, no attempt used) and comes back
  when a sync may run, for at most ``recheck_s`` after it was made. A miss against a
  catalog synced after the command was made is final: a refusal below.
- Template status webhooks (``message_template_status_update`` and friends, published
  by the gateway on ``flowchat.events``) patch the template's status at once and
  re-sync the WABA's catalog (:class:`TemplateEvents`). Other replicas see the change
  within ``local_ttl_s``.
- Only APPROVED templates are sent; the parameters must match the template: count
  and format (positional ``{{1}}`` or named ``{{first_name}}``) of the header and body
  texts, the header's media, and button parameters (:func:`check_template`).
- When the catalog cannot be read (Graph or Redis down, no WABA id), the check is
  skipped and Meta decides: a refusal of ours is a convenience, never a reason to hold
  messages back. A failed load is not retried for ``retry_s`` (no Graph call per message).
- Twilio accounts send Content SIDs: only what applies there is checked (the SID's
  form, no media ids, one parameter style).

Refusals are failed results with FlowChat's own codes (:mod:`flowchat_sender.fates`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from flowchat_contracts import (
    OutboundCommand,
    ProviderError,
    TemplateComponent,
    TemplateContent,
    TemplateParameter,
)
from flowchat_contracts.whatsapp import (
    TEMPLATE_STATUSES,
    TemplateDefinition,
    parameter_mismatch,
    placeholders,
)
from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.errors import UpstreamError
from flowchat_platform.logs import get_logger
from flowchat_platform.redis_batch import HashReads
from flowchat_sender import fates, metrics, provider_http
from flowchat_sender.cloud_api import parse_error
from flowchat_sender.errors import SendRetry

log = get_logger(__name__)

PREFIX = "flowchat:sender:templates:"
_SYNCED_AT = "@synced_at"
#: Meta refuses text parameters with new lines, tabs or more than 4 consecutive spaces.
_BAD_TEXT = re.compile(r"[\n\t]| {5,}")
_MEDIA_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")
#: Twilio Content SIDs: ``HX`` + 32 hex digits.
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
_PATCH = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
#: ``message_template_status_update`` events → the template's status.
_STATUS_EVENTS = {**{s: s for s in TEMPLATE_STATUSES}, "REINSTATED": "APPROVED"}
#: Template events that change what a send may use.
TEMPLATE_FIELDS = frozenset(
    {
        "message_template_status_update",
        "message_template_quality_update",
        "template_category_update",
    }
)


class Template(TemplateDefinition):
    """A template of the catalog (category ``""`` when Meta gives none)."""


@dataclass(frozen=True)
class Catalog:
    """One WABA's templates by (name, language); ``synced_at`` is unix seconds."""

    templates: Mapping[tuple[str, str], Template]
    synced_at: float

    def get(self, name: str, language: str) -> Template | None:
        return self.templates.get((name, language))

    def languages(self, name: str) -> list[str]:
        return sorted(lang for (n, lang) in self.templates if n == name)


# --------------------------------------------------------------------- the checks


class Refusal(Exception):
    """A template send that Meta would refuse: ``code`` is one of FlowChat's own."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _count(message: str) -> Refusal:
    return Refusal(fates.TEMPLATE_PARAMETER_COUNT, message)


def _format(message: str) -> Refusal:
    return Refusal(fates.TEMPLATE_PARAMETER_FORMAT, message)


def check_template(template: Template, content: TemplateContent) -> None:
    """Raise :class:`Refusal` unless ``content`` is a sendable use of ``template``."""
    label = f"template {template.name} ({template.language})"
    if template.status != "APPROVED":
        raise Refusal(
            fates.TEMPLATE_NOT_APPROVED,
            f"{label} is {template.status or 'of unknown status'}; only APPROVED templates "
            "are sent",
        )
    given: dict[str, list[TemplateComponent]] = {"header": [], "body": [], "button": []}
    for component in content.components:
        given[component.type].append(component)
    for kind in ("header", "body"):
        if len(given[kind]) > 1:
            raise _format(f"{label}: more than one {kind} component")
    header = given["header"][0].parameters if given["header"] else []
    body = given["body"][0].parameters if given["body"] else []
    _check_header(template, header)
    _check_text("body", template, _text(template.component("BODY")), body)
    _check_buttons(template, given["button"])


def _text(component: Mapping[str, Any] | None) -> str:
    return str((component or {}).get("text") or "")


def _check_header(template: Template, params: list[TemplateParameter]) -> None:
    header = template.component("HEADER")
    fmt = str((header or {}).get("format") or "TEXT").upper()
    if header is None or fmt == "TEXT":
        _check_text("header", template, _text(header), params)
        return
    if fmt == "LOCATION":
        raise _format(
            "header: the template's LOCATION header needs a location parameter, "
            "which an OutboundCommand cannot carry"
        )
    if fmt not in _MEDIA_FORMATS:
        return  # a header kind this check does not know: Meta decides
    kind = fmt.lower()
    if len(params) != 1:
        raise _count(
            f"header: the template's {fmt} header needs 1 {kind} parameter, {len(params)} given"
        )
    p = params[0]
    if p.type != kind:
        raise _format(f"header: the template's {fmt} header needs a {kind} parameter, not {p.type}")
    if not (p.media_id or p.link):
        raise _format(f"header: the {kind} parameter needs a media_id or a link")


def _check_text(kind: str, template: Template, text: str, params: list[TemplateParameter]) -> None:
    slots = placeholders(text)
    names = [p.parameter_name for p in params]
    mismatch = parameter_mismatch(slots, names, named=template.named)
    if mismatch == "count":
        shown = ", ".join("{{" + s + "}}" for s in slots) or "none"
        raise _count(
            f"{kind}: the template has {len(slots)} parameter(s) ({shown}), {len(params)} given"
        )
    if mismatch == "unnamed":
        raise _format(f"{kind}: the template has named parameters; give each a parameter_name")
    if mismatch == "names":
        raise _format(
            f"{kind}: expected parameters named {', '.join(slots)}; got "
            f"{', '.join(str(n) for n in names)}"
        )
    if mismatch == "named_positional":
        raise _format(
            f"{kind}: the template has positional parameters ({{{{1}}}}, …); give no parameter_name"
        )
    for i, p in enumerate(params, start=1):
        _check_value(f"{kind} parameter {p.parameter_name or i}", p)


def _check_value(where: str, p: TemplateParameter) -> None:
    if p.type in ("image", "video", "document", "payload"):
        raise _format(f"{where}: a {p.type} parameter cannot fill a text placeholder")
    if p.type == "text":
        if not (p.text or "").strip():
            raise _format(f"{where}: empty text")
        if _BAD_TEXT.search(p.text or ""):
            raise _format(
                f"{where}: text may not contain new lines, tabs or more than 4 consecutive spaces"
            )
    elif p.type == "currency":
        if not p.currency_code or p.amount is None:
            raise _format(f"{where}: a currency parameter needs currency_code and amount")
    elif p.type == "date_time" and not (p.fallback_value or p.text):
        raise _format(f"{where}: a date_time parameter needs a fallback_value")


#: Template button type → the send's ``sub_type``.
_SUB_TYPES = {"QUICK_REPLY": "quick_reply", "URL": "url", "OTP": "url", "CATALOG": "catalog"}


def _check_buttons(template: Template, components: list[TemplateComponent]) -> None:
    raw = (template.component("BUTTONS") or {}).get("buttons") or []
    buttons = [b for b in raw if isinstance(b, dict)]
    seen: set[int] = set()
    for c in components:
        index = c.index or 0
        if index in seen:
            raise _format(f"button {index}: given twice")
        seen.add(index)
        _check_button(c, index, buttons)
    for index, button in enumerate(buttons):
        btype = str(button.get("type", "")).upper()
        dynamic = btype == "OTP" or (
            btype == "URL" and bool(placeholders(str(button.get("url", ""))))
        )
        if dynamic and index not in seen:
            raise _count(
                f"button {index}: the template's {btype} button needs a url component "
                "with 1 text parameter"
            )
        if btype == "COPY_CODE":
            raise _format(
                f"button {index}: the template's COPY_CODE button needs a coupon_code "
                "parameter, which an OutboundCommand cannot carry"
            )


def _check_button(c: TemplateComponent, index: int, buttons: list[dict[str, Any]]) -> None:
    where = f"button {index}"
    if index >= len(buttons):
        raise _format(f"{where}: the template has {len(buttons)} button(s)")
    btype = str(buttons[index].get("type", "")).upper()
    expected = _SUB_TYPES.get(btype)
    sub_type = c.sub_type or "quick_reply"
    if expected is None:
        raise _format(f"{where}: a {btype} button takes parameters an OutboundCommand cannot carry")
    if sub_type != expected:
        raise _format(f"{where} is a {btype} button: use sub_type {expected}, not {sub_type}")
    if btype == "URL" and not placeholders(str(buttons[index].get("url", ""))):
        raise _format(f"{where}: the URL is static; it takes no parameter")
    if expected == "url":
        if len(c.parameters) != 1:
            raise _count(
                f"{where}: a {btype} button needs 1 text parameter, {len(c.parameters)} given"
            )
        if c.parameters[0].type != "text" or not (c.parameters[0].text or "").strip():
            raise _format(f"{where}: the {btype} button's parameter is a non-empty text")
    elif expected == "quick_reply" and (
        len(c.parameters) > 1 or any(p.type != "payload" for p in c.parameters)
    ):
        raise _format(f"{where}: a quick reply takes at most one payload parameter")


def check_twilio(content: TemplateContent) -> None:
    """Twilio sends a Content SID: check only what applies to it."""
    if not _CONTENT_SID.match(content.name):
        raise Refusal(
            fates.TEMPLATE_UNKNOWN,
            f"Twilio templates are Content SIDs (HX + 32 hex digits), not {content.name!r}",
        )
    params = [p for c in content.components for p in c.parameters]
    if any(p.media_id for p in params):
        raise _format("Twilio takes media by URL only; a parameter has a media_id")
    named = {p.parameter_name is not None for p in params}
    if len(named) > 1:
        raise _format("parameters are either all named or all positional")


# --------------------------------------------------------------------- the catalog


class CatalogSource(Protocol):
    async def fetch(self, account: AccountCredentials) -> list[dict[str, Any]]: ...


class GraphTemplates:
    """Every page of ``GET /{version}/{waba_id}/message_templates`` (one shared session)."""

    FIELDS = "name,language,status,category,parameter_format,components"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        graph_url: str,
        version: str,
        timeout_s: float = 10.0,
        page_size: int = 100,
        max_pages: int = 200,
    ) -> None:
        self._session = session
        self._base = f"{graph_url.rstrip('/')}/{version}"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._page_size = page_size
        self._max_pages = max_pages

    async def fetch(self, account: AccountCredentials) -> list[dict[str, Any]]:
        url = f"{self._base}/{account.waba_id}/message_templates"
        headers = {"Authorization": f"Bearer {account.access_token}"}
        params = {"limit": str(self._page_size), "fields": self.FIELDS}
        out: list[dict[str, Any]] = []
        for _ in range(self._max_pages):
            try:
                status, raw = await provider_http.request(
                    self._session, "GET", url, params=params, headers=headers, timeout=self._timeout
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise UpstreamError(f"template catalog: {exc!r}", service="graph") from exc
            if status != 200:
                error = parse_error(status, raw)
                raise UpstreamError(
                    f"template catalog: HTTP {status}, code {error.code}: {error.message}",
                    service="graph",
                )
            page = orjson.loads(raw)
            out.extend(t for t in page.get("data") or [] if isinstance(t, dict))
            paging = page.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after:
                return out
            params = {**params, "after": str(after)}
        raise UpstreamError(f"template catalog: more than {self._max_pages} pages", service="graph")


@dataclass
class _Local:
    catalog: Catalog
    loaded_at: float


@dataclass
class _Flight:
    task: asyncio.Task[Catalog | None]
    started_at: float


@dataclass
class TemplateCatalog:
    """Catalogs per (tenant, WABA): this process's copy, then Redis, then the Graph API."""

    redis: aioredis.Redis
    source: CatalogSource
    ttl_s: int = 24 * 3600
    local_ttl_s: float = 30.0
    #: A command's template miss waits for a fresh sync at most this long after the
    #: command was made (then it is final).
    recheck_s: float = 300.0
    retry_s: float = 60.0
    #: Misses trigger at most one sync per WABA this often (per process).
    miss_sync_s: float = 5.0
    clock: Callable[[], float] = time.time
    _local: dict[str, _Local] = field(default_factory=dict)
    _failed: dict[str, float] = field(default_factory=dict)
    _flights: dict[str, _Flight] = field(default_factory=dict)
    #: Concurrent loads' ``HGETALL`` of ``redis``, as one pipeline per batch.
    reads: HashReads = field(init=False)

    def __post_init__(self) -> None:
        self.reads = HashReads(self.redis)

    @staticmethod
    def key(tenant_id: str, waba_id: str) -> str:
        return f"{PREFIX}{tenant_id}:{waba_id}"

    async def get(self, account: AccountCredentials) -> Catalog | None:
        """The account's catalog; None when it cannot be read now."""
        key = self.key(account.tenant_id, account.waba_id or "")
        local = self._local.get(key)
        if local is not None and self.clock() - local.loaded_at < self.local_ttl_s:
            return local.catalog
        return await self._single(key, lambda: self._load(key, account))

    async def refresh(
        self, account: AccountCredentials, *, not_before: float | None = None
    ) -> Catalog | None:
        """Sync from the Graph API now (joining a sync that started after ``not_before``)."""
        key = self.key(account.tenant_id, account.waba_id or "")
        flight = self._flights.get(key)
        if flight is not None and (not_before is None or flight.started_at >= not_before):
            return await asyncio.shield(flight.task)
        if flight is not None:
            await asyncio.shield(flight.task)
        return await self._single(key, lambda: self._sync(key, account), force=True)

    async def after_miss(
        self, account: AccountCredentials, catalog: Catalog, *, made_at: float
    ) -> Catalog | None:
        """The catalog to judge a miss by, for a command made at ``made_at``.

        ``catalog`` itself when it was synced after the command was made (the miss is
        real); else a fresh sync's (joining one that started after ``made_at``); None
        when no sync can be had (Graph failing: Meta decides). Raises
        :class:`~flowchat_sender.errors.SendRetry` when the last sync is younger than
        ``miss_sync_s``: the command comes back when one may run.
        """
        now = self.clock()
        made_at = min(made_at, now)
        if catalog.synced_at >= made_at:
            return catalog
        key = self.key(account.tenant_id, account.waba_id or "")
        if self._recently_failed(key):
            return None
        flight = self._flights.get(key)
        wait = self.miss_sync_s - (now - catalog.synced_at)
        if wait > 0 and (flight is None or flight.started_at < made_at):
            if now - made_at >= self.recheck_s:
                return catalog  # waited long enough: the miss is final
            metrics.TEMPLATE_CATALOG.labels("miss_wait").inc()
            raise SendRetry(
                f"template not in the catalog synced {now - catalog.synced_at:.1f}s ago; "
                "retried after the next sync",
                delay_s=wait,
                counts_as_attempt=False,
            )
        metrics.TEMPLATE_CATALOG.labels("miss_sync").inc()
        fresh = await self.refresh(account, not_before=made_at)
        if fresh is None or fresh.synced_at < made_at:
            return None  # the sync failed: Meta decides
        return fresh

    async def patch(
        self, tenant_id: str, waba_id: str, name: str, language: str, status: str
    ) -> bool:
        """Set one template's status in Redis (a webhook said so); False when unknown.

        Only events that are statuses change it (``REINSTATED`` is APPROVED again);
        ``FLAGGED`` and the like leave the template sendable.
        """
        key = self.key(tenant_id, waba_id)
        self._local.pop(key, None)
        status = _STATUS_EVENTS.get(status.upper(), "")
        if not status:
            return False
        field_name = f"{name}:{language}"
        raw = await self.redis.hget(key, field_name)
        if raw is None:
            return False
        data = orjson.loads(raw)
        data["status"] = status
        # Only into the synced hash (never recreate an expired one without its TTL).
        done = await self.redis.eval(_PATCH, 1, key, field_name, orjson.dumps(data))
        return bool(done)

    async def close(self) -> None:
        for flight in list(self._flights.values()):
            flight.task.cancel()
        for flight in list(self._flights.values()):
            with contextlib.suppress(BaseException):
                await flight.task

    # ------------------------------------------------------------ loading

    async def _single(
        self,
        key: str,
        load: Callable[[], Coroutine[Any, Any, Catalog | None]],
        *,
        force: bool = False,
    ) -> Catalog | None:
        flight = self._flights.get(key)
        if flight is None or force:
            task: asyncio.Task[Catalog | None] = asyncio.create_task(load())
            flight = _Flight(task, self.clock())
            self._flights[key] = flight

            def done(_: asyncio.Task[Catalog | None], key: str = key, f: _Flight = flight) -> None:
                if self._flights.get(key) is f:
                    del self._flights[key]

            task.add_done_callback(done)
        return await asyncio.shield(flight.task)

    def _recently_failed(self, key: str) -> bool:
        failed = self._failed.get(key)
        return failed is not None and self.clock() - failed < self.retry_s

    async def _load(self, key: str, account: AccountCredentials) -> Catalog | None:
        try:
            stored = await self.reads.hgetall(key)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("template catalog unreadable in Redis", error=repr(exc))
            metrics.TEMPLATE_CATALOG.labels("redis_error").inc()
            return None
        if stored:
            catalog = _decode(stored)
            self._local[key] = _Local(catalog, self.clock())
            metrics.TEMPLATE_CATALOG.labels("redis").inc()
            return catalog
        if self._recently_failed(key):
            return None
        return await self._sync(key, account)

    async def _sync(self, key: str, account: AccountCredentials) -> Catalog | None:
        started = self.clock()
        try:
            items = await self.source.fetch(account)
        except UpstreamError as exc:
            self._failed[key] = self.clock()
            metrics.TEMPLATE_CATALOG.labels("graph_error").inc()
            log.warning(
                "template catalog not synced; templates are not checked for now",
                account_id=account.account_id,
                waba_id=account.waba_id,
                error=str(exc),
            )
            local = self._local.get(key)
            return local.catalog if local is not None else None
        templates = [Template.from_graph(t) for t in items]
        mapping: dict[FieldT, EncodableT] = {
            f"{t.name}:{t.language}": orjson.dumps(t.as_json()) for t in templates
        }
        mapping[_SYNCED_AT] = str(started)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=mapping)
                pipe.expire(key, self.ttl_s)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("template catalog not stored in Redis", error=repr(exc))
        catalog = Catalog({(t.name, t.language): t for t in templates}, started)
        self._local[key] = _Local(catalog, self.clock())
        self._failed.pop(key, None)
        metrics.TEMPLATE_CATALOG.labels("graph").inc()
        log.info(
            "template catalog synced",
            account_id=account.account_id,
            waba_id=account.waba_id,
            templates=len(templates),
        )
        return catalog


def _decode(stored: Mapping[bytes | str, bytes | str]) -> Catalog:
    templates: dict[tuple[str, str], Template] = {}
    synced_at = 0.0
    for raw_key, raw_value in stored.items():
        name = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
        if name == _SYNCED_AT:
            synced_at = float(raw_value)
            continue
        t = Template.from_graph(orjson.loads(raw_value))
        templates[(t.name, t.language)] = t
    return Catalog(templates, synced_at)


# --------------------------------------------------------------------- the guard


class TemplateGuard:
    """The sender's precheck for template commands (see the module docstring)."""

    def __init__(self, catalog: TemplateCatalog) -> None:
        self.catalog = catalog

    async def check(
        self, command: OutboundCommand, account: AccountCredentials
    ) -> ProviderError | None:
        content = command.content
        if not isinstance(content, TemplateContent):
            return None
        try:
            if account.provider == "twilio":
                check_twilio(content)
            else:
                await self._check_meta(account, content, command.created_at.timestamp())
        except Refusal as refusal:
            metrics.TEMPLATE_REFUSALS.labels(str(refusal.code)).inc()
            rule = fates.rule_for("flowchat", refusal.code)
            return ProviderError(
                code=refusal.code,
                title=rule.hint,
                message=f"not sent by FlowChat: {refusal.message}"[:1000],
            )
        return None

    async def _check_meta(
        self, account: AccountCredentials, content: TemplateContent, made_at: float
    ) -> None:
        if not account.waba_id:
            return
        catalog = await self.catalog.get(account)
        if catalog is None:
            return
        template = catalog.get(content.name, content.language)
        if template is None or template.status != "APPROVED":
            fresher = await self.catalog.after_miss(account, catalog, made_at=made_at)
            if fresher is None:
                return
            catalog = fresher
            template = catalog.get(content.name, content.language)
        if template is None:
            others = catalog.languages(content.name)
            where = f"in {', '.join(others)} only" if others else "not in the catalog"
            raise Refusal(
                fates.TEMPLATE_UNKNOWN,
                f"template {content.name} ({content.language}) is {where} of WABA "
                f"{account.waba_id}",
            )
        check_template(template, content)


# --------------------------------------------------------------------- events


class AccountLookup(Protocol):
    async def account(self, account_id: str) -> AccountCredentials | None: ...


class TemplateEvents:
    """``sender.events``: the gateway's template webhooks → patch, then re-sync the catalog."""

    def __init__(
        self, catalog: TemplateCatalog, accounts: AccountLookup, *, clock: Callable[[], float]
    ) -> None:
        self._catalog = catalog
        self._accounts = accounts
        self._clock = clock

    async def handle(self, body: dict[str, Any], _raw: object = None) -> None:
        if body.get("kind") != "business_event" or body.get("field") not in TEMPLATE_FIELDS:
            metrics.TEMPLATE_EVENTS.labels("ignored").inc()
            return
        received = self._clock()
        try:
            account = await self._accounts.account(str(body.get("account_id", "")))
        except UpstreamError as exc:
            log.warning("template event: credentials unavailable", error=str(exc))
            account = None
        raw_data = body.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        tenant_id = str(body.get("tenant_id", ""))
        waba_id = str(body.get("waba_id") or (account.waba_id if account else "") or "")
        name, language = data.get("message_template_name"), data.get("message_template_language")
        event = body.get("event") or data.get("event")
        if (
            body.get("field") == "message_template_status_update"
            and waba_id
            and isinstance(name, str)
            and isinstance(language, str)
            and isinstance(event, str)
        ):
            try:
                await self._catalog.patch(tenant_id, waba_id, name, language, event)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("template status not patched in Redis", error=repr(exc))
        if account is None or account.provider != "meta" or not account.waba_id:
            metrics.TEMPLATE_EVENTS.labels("no_account").inc()
            return
        await self._catalog.refresh(account, not_before=received)
        metrics.TEMPLATE_EVENTS.labels("synced").inc()
        log.info(
            "template catalog refreshed after a webhook",
            account_id=account.account_id,
            template=name,
            template_event=event,
        )
