"""PostgreSQL access (asyncpg) for contacts, campaigns and reminders (schema ``conversation``).

Implements the stores of :mod:`~flowchat_conversation.outreach.ports` (together:
:class:`~flowchat_conversation.outreach.ports.OutreachStore`).
JSON columns travel as text (no codec on the pool).

Customers' ids and names are stored sealed (:mod:`flowchat_conversation.sealing`): the
customer key and every alias are keyed digests, the ids Fernet tokens in
``customer_aliases.alias_enc``, names in ``contacts.name_enc``; values come back in
clear from here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from flowchat_contracts import CustomerIdentity, is_bsuid
from flowchat_conversation.customers import Customer, alias_kind, choose_key, identity_for
from flowchat_conversation.outreach.campaigns import (
    Campaign,
    CampaignMetrics,
    CampaignStatus,
    Candidate,
    FrequencyCap,
    NewCampaign,
    NewRecipient,
    PendingRecipient,
    QuietHours,
    RunningCampaign,
    StartedCampaign,
    StatusChange,
)
from flowchat_conversation.outreach.contacts import (
    CUSTOMER_SOURCES,
    Contact,
    ContactPatch,
    NewContact,
    OptInSource,
    Segment,
    UpsertCounts,
)
from flowchat_conversation.outreach.reminders import DueReminder, NewReminder, Reminder
from flowchat_conversation.sealing import Identities, seal_customers
from flowchat_platform.privacy import is_sealed

_ALIAS_SQL = (
    "(SELECT ca.{col} FROM customer_aliases ca WHERE ca.tenant_id = contacts.tenant_id "
    "AND ca.customer_key = contacts.customer_wa_id AND ca.kind = '{kind}' "
    "ORDER BY ca.linked_at DESC LIMIT 1) AS {name}"
)
#: SQL for the token of the id a stored customer key ``{key}`` of tenant ``{tenant}``
#: is the digest of (the key is always an alias of itself).
KEY_ID_SQL = (
    "(SELECT ka.alias_enc FROM customer_aliases ka WHERE ka.tenant_id = {tenant} "
    "AND ka.alias = {key})"
)
_CONTACT_COLUMNS = (
    "contact_id, customer_wa_id, name, name_enc, status, tags, groups, attributes, "
    "marketing_opt_in, opt_in_source, opt_in_changed_at, last_inbound_at, first_seen_at, "
    "updated_at, "
    + _ALIAS_SQL.format(col="alias", kind="phone", name="phone_id")
    + ", "
    + _ALIAS_SQL.format(col="alias_enc", kind="phone", name="phone_enc")
    + ", "
    + _ALIAS_SQL.format(col="alias", kind="bsuid", name="user_id")
    + ", "
    + _ALIAS_SQL.format(col="alias_enc", kind="bsuid", name="user_enc")
    + ", "
    + KEY_ID_SQL.format(tenant="contacts.tenant_id", key="contacts.customer_wa_id")
    + " AS key_enc"
)
#: Forward-only recipient states (``failed`` is terminal).
_RANK_SQL = (
    "CASE {col} WHEN 'pending' THEN 0 WHEN 'queued' THEN 1 WHEN 'sent' THEN 2 "
    "WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 WHEN 'failed' THEN 100 ELSE -1 END"
)
_STATUS_MAP = {"sent": "sent", "delivered": "delivered", "read": "read", "played": "read"}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _hex(token: bytes | None) -> str | None:
    """A token inside a JSON document bound for a ``bytea`` column."""
    return None if token is None else "\\x" + token.hex()


def _ids_of(ids: Identities, rows: Any) -> list[tuple[Any, str]]:
    """``(row, id in clear)`` for rows of ``id`` (stored) and ``enc`` (its token); a
    digest without a token (a key, listed again as its own alias) is left out."""
    out = []
    for r in rows:
        value = ids.open(r["enc"], r["id"])
        if value is not None and (r["enc"] is not None or not is_sealed(value)):
            out.append((r, value))
    return out


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _contact(row: Any, ids: Identities) -> Contact:
    phone = ids.open(row["phone_enc"], row["phone_id"])
    return Contact(
        contact_id=row["contact_id"],
        phone="+" + phone if phone else None,
        wa_id=ids.open(row["key_enc"], row["customer_wa_id"]) or row["customer_wa_id"],
        user_id=ids.open(row["user_enc"], row["user_id"]),
        name=ids.open(row["name_enc"], row["name"]),
        status=row["status"],
        tags=list(row["tags"]),
        groups=list(row["groups"]),
        attributes=_loads(row["attributes"]),
        marketing_opt_in=row["marketing_opt_in"],
        opt_in_source=row["opt_in_source"],
        opt_in_changed_at=row["opt_in_changed_at"],
        last_inbound_at=row["last_inbound_at"],
        created_at=row["first_seen_at"],
        updated_at=row["updated_at"],
    )


def segment_where(
    tenant_id: str, segment: Segment, ids: Identities, *, alias: str = ""
) -> tuple[str, list[Any]]:
    """A WHERE clause (and its arguments, ``$1`` = tenant) selecting the segment.

    ``q`` finds a contact by one of its ids (a phone number in any form, a BSUID),
    exactly: the ids and names are encrypted, so a part of one matches nothing (but in
    rows not sealed yet)."""
    p = f"{alias}." if alias else ""
    args: list[Any] = [tenant_id]
    conds = [f"{p}tenant_id = $1"]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if segment.statuses:
        conds.append(f"{p}status = ANY({arg(list(segment.statuses))}::text[])")
    if segment.tags_all:
        conds.append(f"{p}tags @> {arg(list(segment.tags_all))}::text[]")
    if segment.tags_any:
        conds.append(f"{p}tags && {arg(list(segment.tags_any))}::text[]")
    if segment.groups_any:
        conds.append(f"{p}groups && {arg(list(segment.groups_any))}::text[]")
    for key, value in segment.attributes.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        conds.append(f"{p}attributes ->> {arg(key)} = {arg(text)}")
    if segment.marketing_opt_in is not None:
        conds.append(f"{p}marketing_opt_in = {arg(segment.marketing_opt_in)}")
    if segment.q:
        escaped = segment.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = arg(f"%{escaped}%")
        found = (
            f"{p}customer_wa_id IN (SELECT sa.customer_key FROM customer_aliases sa "  # noqa: S608
            f"WHERE sa.tenant_id = $1 AND sa.alias = {arg(ids.key(tenant_id, segment.q))})"
        )
        # a name in clear: a row not sealed yet (stored keys are digests: no LIKE on them)
        conds.append(f"({found} OR {p}name ILIKE {like})")
    return " AND ".join(conds), args


def _campaign(row: Any) -> Campaign:
    quiet = (
        QuietHours(start=row["quiet_start"], end=row["quiet_end"])
        if row["quiet_start"] is not None and row["quiet_end"] is not None
        else None
    )
    return Campaign(
        campaign_id=row["campaign_id"],
        tenant_id=row["tenant_id"],
        account_id=row["account_id"],
        name=row["name"],
        status=row["status"],
        category=row["category"],
        template=_loads(row["template"]),
        parameters=_loads(row["parameters"]),
        segment=_loads(row["segment"]),
        timezone=row["timezone"],
        scheduled_at=row["scheduled_at"],
        quiet_hours=quiet,
        rate_mps=row["rate_mps"],
        frequency_cap=FrequencyCap(
            max_messages=row["cap_messages"], window_hours=row["cap_window_s"] // 3600
        ),
        pause_reason=row["pause_reason"],
        targeted=row["targeted"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
    )


#: A reminder's columns, with the token of its customer's id.
_REMINDER_COLUMNS = (
    "*, " + KEY_ID_SQL.format(tenant="reminders.tenant_id", key="reminders.wa_id") + " AS key_enc"
)


def _reminder(row: Any, ids: Identities) -> Reminder:
    wa_id = ids.open(row["key_enc"], row["wa_id"]) or row["wa_id"]
    return Reminder(
        reminder_id=row["reminder_id"],
        tenant_id=row["tenant_id"],
        account_id=row["account_id"],
        phone=wa_id if is_bsuid(wa_id) else "+" + wa_id,
        kind=row["kind"],
        due_at=row["due_at"],
        state=row["state"],
        category=row["category"],
        text=row["text"],
        template=_loads(row["template"]) if row["template"] is not None else None,
        reference=row["reference"],
        dedupe_key=row["dedupe_key"],
        outcome=row["outcome"],
        message_id=row["message_id"],
        fired_at=row["fired_at"],
        created_at=row["created_at"],
    )


async def insert_reminder(
    conn: Any, reminder: NewReminder, *, unless_pending: bool = False
) -> Any | None:
    """Insert a reminder (the pool or a connection in a transaction); None when its dedupe
    key was used before or, with ``unless_pending``, when the same kind, reference and
    customer already have a pending one."""
    pending = (
        "AND NOT EXISTS (SELECT 1 FROM reminders WHERE tenant_id = $2 AND kind = $5 "
        "AND reference IS NOT DISTINCT FROM $10 AND wa_id = $4 AND state = 'pending')"
        if unless_pending
        else ""
    )
    return await conn.fetchrow(
        f"""
        INSERT INTO reminders (reminder_id, tenant_id, account_id, wa_id, kind, due_at,
            category, text, template, reference, dedupe_key, message_id)
        SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::timestamptz, $7::text,
            $8::text, $9::jsonb, $10::text, $11::text, $12::text
        WHERE true {pending}
        ON CONFLICT ON CONSTRAINT reminders_dedupe DO NOTHING
        RETURNING {_REMINDER_COLUMNS}
        """,
        reminder.reminder_id,
        reminder.tenant_id,
        reminder.account_id,
        reminder.wa_id,
        reminder.kind,
        reminder.due_at,
        reminder.category,
        reminder.text,
        _json(reminder.template) if reminder.template is not None else None,
        reminder.reference,
        reminder.dedupe_key,
        reminder.message_id,
    )


# ---------------------------------------------------------------- customer aliases
# (the rule is in flowchat_conversation.customers; commerce's repository uses these too)

#: Resolve an identity and link its ids, in one statement: the key of the first id
#: already linked (in the order of ``CustomerIdentity.ids``: BSUID, phone, parent),
#: else ``$5`` (the digest of ``identity.key``); every id not linked yet is linked to it
#: (digest ``$2``, token ``$4``); answers the key and the tokens of every id linked to it.
RESOLVE_WITH = """
WITH given AS (
    SELECT g.alias, g.kind, g.enc, g.n
    FROM unnest($2::text[], $3::text[], $4::bytea[]) WITH ORDINALITY AS g(alias, kind, enc, n)
), chosen AS (
    SELECT COALESCE(
        (SELECT a.customer_key FROM customer_aliases a JOIN given g ON g.alias = a.alias
         WHERE a.tenant_id = $1 ORDER BY g.n LIMIT 1),
        $5::text) AS key
), linked AS (
    INSERT INTO customer_aliases (tenant_id, alias, customer_key, kind, alias_enc)
    SELECT $1, g.alias, c.key, g.kind, g.enc FROM given g CROSS JOIN chosen c
    ON CONFLICT (tenant_id, alias) DO NOTHING
    RETURNING alias, alias_enc
)
"""
#: The tokens of every id linked to the chosen key (``c``), after :data:`RESOLVE_WITH`.
RESOLVED_IDS = """ARRAY(
    SELECT alias_enc FROM customer_aliases WHERE tenant_id = $1 AND customer_key = c.key
    UNION SELECT alias_enc FROM linked)"""
_RESOLVE = f"{RESOLVE_WITH}SELECT c.key, {RESOLVED_IDS} AS ids FROM chosen c"  # noqa: S608

#: SQL for the token of the address of the customer keyed by ``{key}`` of tenant
#: ``{tenant}``: the newest phone number linked to it, else the id the key is the
#: digest of (a BSUID); :func:`open_address` reads it.
ADDRESS_SQL = (
    "(SELECT ca.alias_enc FROM customer_aliases ca WHERE ca.tenant_id = {tenant} "
    "AND ca.customer_key = {key} AND ca.alias_enc IS NOT NULL "
    "ORDER BY (ca.kind = 'phone') DESC, (ca.kind <> 'phone' AND ca.alias = {key}) DESC, "
    "ca.linked_at DESC LIMIT 1)"
)


_ADDRESS_R = ADDRESS_SQL.format(tenant="r.tenant_id", key="r.wa_id")


def open_address(ids: Identities, token: bytes | None, key: str) -> str:
    """Where messages to the customer keyed by ``key`` go (``key`` itself for a row
    stored in clear before encryption)."""
    return ids.open(token, key) or key


def _customer(
    ids: Identities, tenant_id: str, key: str, tokens: Sequence[bytes | None]
) -> Customer:
    clear = sorted(set(ids.open_all(tokens)))
    own = [i for i in clear if ids.key(tenant_id, i) == key]
    rest = [i for i in clear if i not in own]
    return Customer(key=key, ids=(*own, *rest))


def _sealed(ids: Identities, tenant_id: str, customer_ids: Sequence[str]) -> list[Any]:
    """The arguments of an alias insert: digests, kinds, tokens."""
    return [
        [ids.key(tenant_id, i) for i in customer_ids],
        [alias_kind(i) for i in customer_ids],
        [ids.encrypt(i) for i in customer_ids],
    ]


async def _seal_met(
    conn: Any, ids: Identities, tenant_id: str, customer_ids: Sequence[str]
) -> None:
    """A customer stored in clear before encryption and met before the background pass
    sealed them: sealed now, in the caller's transaction."""
    if not ids.legacy:
        return
    keys = await conn.fetch(
        "SELECT DISTINCT customer_key FROM customer_aliases "
        "WHERE tenant_id = $1 AND alias = ANY($2::text[])",
        tenant_id,
        list(customer_ids),
    )
    if keys:
        await seal_customers(conn, ids, tenant_id, [r["customer_key"] for r in keys])


async def resolve_args(
    conn: Any, ids: Identities, tenant_id: str, identity: CustomerIdentity
) -> list[Any]:
    """The arguments ``$1`` to ``$5`` of :data:`RESOLVE_WITH` (a customer stored in clear
    before encryption sealed first, :func:`_seal_met`)."""
    customer_ids = list(identity.ids)
    await _seal_met(conn, ids, tenant_id, customer_ids)
    return [tenant_id, *_sealed(ids, tenant_id, customer_ids), ids.key(tenant_id, identity.key)]


def resolved(ids: Identities, tenant_id: str, key: str, tokens: Sequence[bytes | None]) -> Customer:
    """The customer of :data:`RESOLVE_WITH`'s chosen key and :data:`RESOLVED_IDS`."""
    return _customer(ids, tenant_id, key, tokens)


async def resolve_customer(
    conn: Any, ids: Identities, tenant_id: str, identity: CustomerIdentity
) -> Customer:
    """The customer ``identity`` names (created when new), its unlinked ids linked."""
    row = await conn.fetchrow(_RESOLVE, *await resolve_args(conn, ids, tenant_id, identity))
    return _customer(ids, tenant_id, row["key"], row["ids"])


async def relink_customer(
    conn: Any,
    ids: Identities,
    tenant_id: str,
    previous: CustomerIdentity,
    current: CustomerIdentity,
) -> Customer:
    """Meta's id change: the ids of ``current`` become aliases of the customer who owned
    the ids of ``previous`` (moved there if linked elsewhere); the old ids stay."""
    known = await customer_keys(conn, ids, tenant_id, previous.ids)
    if not known:
        customer = await resolve_customer(conn, ids, tenant_id, current)
        return await resolve_customer_with(conn, ids, tenant_id, previous, customer.key)
    key = choose_key(previous, known)
    moved = [i for i in current.ids if i not in known]
    await conn.execute(
        """
        INSERT INTO customer_aliases (tenant_id, alias, customer_key, kind, alias_enc)
        SELECT $1, g.alias, $5, g.kind, g.enc
        FROM unnest($2::text[], $3::text[], $4::bytea[]) AS g(alias, kind, enc)
        ON CONFLICT (tenant_id, alias) DO UPDATE
            SET customer_key = EXCLUDED.customer_key, linked_at = now()
        """,
        tenant_id,
        *_sealed(ids, tenant_id, moved),
        key,
    )
    return await resolve_customer_with(conn, ids, tenant_id, previous, key)


async def resolve_customer_with(
    conn: Any, ids: Identities, tenant_id: str, identity: CustomerIdentity, key: str
) -> Customer:
    """Link the unlinked ids of ``identity`` to ``key`` (a stored key); the customer
    keyed by ``key``."""
    await conn.execute(
        """
        INSERT INTO customer_aliases (tenant_id, alias, customer_key, kind, alias_enc)
        SELECT $1, g.alias, $5, g.kind, g.enc
        FROM unnest($2::text[], $3::text[], $4::bytea[]) AS g(alias, kind, enc)
        ON CONFLICT (tenant_id, alias) DO NOTHING
        """,
        tenant_id,
        *_sealed(ids, tenant_id, list(identity.ids)),
        key,
    )
    known = await conn.fetch(
        "SELECT alias_enc FROM customer_aliases WHERE tenant_id = $1 AND customer_key = $2",
        tenant_id,
        key,
    )
    return _customer(ids, tenant_id, key, [r["alias_enc"] for r in known])


async def customer_keys(
    conn: Any, ids: Identities, tenant_id: str, customer_ids: Sequence[str]
) -> dict[str, str]:
    """``id → stored customer key`` for the ids (in clear) that are linked."""
    await _seal_met(conn, ids, tenant_id, customer_ids)
    digests = {ids.key(tenant_id, i): i for i in customer_ids}
    rows = await conn.fetch(
        "SELECT alias, customer_key FROM customer_aliases "
        "WHERE tenant_id = $1 AND alias = ANY($2::text[])",
        tenant_id,
        list(digests),
    )
    return {digests[r["alias"]]: r["customer_key"] for r in rows}


async def cancel_reminders(
    conn: Any, tenant_id: str, kind: str, reference: str, *, wa_id: str | None, outcome: str
) -> int:
    """Cancel the pending reminders of ``kind`` about ``reference`` (of one customer)."""
    result = await conn.execute(
        "UPDATE reminders SET state = 'cancelled', outcome = $5, updated_at = now() "
        "WHERE tenant_id = $1 AND kind = $2 AND reference = $3 "
        "AND ($4::text IS NULL OR wa_id = $4) AND state = 'pending'",
        tenant_id,
        kind,
        reference,
        wa_id,
        outcome,
    )
    return int(result.split()[-1])


class OutreachRepository:
    def __init__(self, pool: asyncpg.Pool, ids: Identities) -> None:
        self._pool = pool
        self._ids = ids

    # ================================================================ contacts

    async def upsert_contacts(
        self, tenant_id: str, contacts: list[NewContact], *, source: OptInSource
    ) -> UpsertCounts:
        """Create new contacts and update existing ones (given fields only), atomically.

        Insert-or-skip first, then update the rest: a contact the bot creates at the
        same moment is then updated, never lost. Opting in never overrides an opt-out
        the customer made themselves (``opt_out_kept``)."""
        async with self._pool.acquire() as conn, conn.transaction():
            return await self._upsert_contacts(conn, tenant_id, contacts, source=source)

    async def _upsert_contacts(
        self, conn: Any, tenant_id: str, contacts: list[NewContact], *, source: OptInSource
    ) -> UpsertCounts:
        # Each contact under its customer key: the key an id of it is linked to (a
        # customer who wrote with a BSUID, a phone number imported before), else a new
        # one; its ids not linked yet are linked to that key.
        ids = self._ids
        identities = [c.identity for c in contacts]
        known = await customer_keys(
            conn, ids, tenant_id, [i for ident in identities for i in ident.ids]
        )
        # a new customer is keyed by the digest of its key id (as stored)
        keys = [
            choose_key(ident, known)
            if any(i in known for i in ident.ids)
            else ids.key(tenant_id, ident.key)
            for ident in identities
        ]
        links = {
            i: key
            for ident, key in zip(identities, keys, strict=True)
            for i in ident.ids
            if i not in known
        }
        if links:
            digests, kinds, tokens = _sealed(ids, tenant_id, list(links))
            await conn.execute(
                """
                INSERT INTO customer_aliases (tenant_id, alias, customer_key, kind, alias_enc)
                SELECT $1, g.alias, g.key, g.kind, g.enc
                FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[])
                    AS g(alias, key, kind, enc)
                ON CONFLICT (tenant_id, alias) DO NOTHING
                """,
                tenant_id,
                digests,
                list(links.values()),
                kinds,
                tokens,
            )
        rows = _json(
            [
                {
                    "wa_id": key,
                    "name": _hex(ids.encrypt(c.name)),
                    "status": c.status,
                    "tags": c.tags,
                    "groups": c.groups,
                    "attributes": c.attributes,
                    "opt_in": c.marketing_opt_in,
                }
                for c, key in zip(contacts, keys, strict=True)
            ]
        )
        recordset = (
            "jsonb_to_recordset($2::jsonb) AS x(wa_id text, name bytea, status text, "
            "tags text[], groups text[], attributes jsonb, opt_in boolean)"
        )
        created = await conn.fetch(
            f"""
            INSERT INTO contacts (tenant_id, customer_wa_id, name_enc, status, tags, groups,
                attributes, marketing_opt_in, opt_in_source, opt_in_changed_at,
                opted_out_at, origin)
            SELECT $1, x.wa_id, x.name, COALESCE(x.status, 'active'),
                COALESCE(x.tags, '{{}}'), COALESCE(x.groups, '{{}}'),
                jsonb_strip_nulls(COALESCE(x.attributes, '{{}}')),
                COALESCE(x.opt_in, true),
                CASE WHEN x.opt_in IS NULL THEN 'default' ELSE $3 END,
                CASE WHEN x.opt_in IS NULL THEN NULL ELSE now() END,
                CASE WHEN x.opt_in = false THEN now() END,
                $3
            FROM {recordset}
            ON CONFLICT (tenant_id, customer_wa_id) DO NOTHING
            RETURNING customer_wa_id
            """,  # noqa: S608
            tenant_id,
            rows,
            source,
        )
        done = [r["customer_wa_id"] for r in created]
        changed = (
            "(x.opt_in IS NOT NULL AND x.opt_in IS DISTINCT FROM c.marketing_opt_in "
            "AND NOT (x.opt_in AND c.opt_in_source = ANY($5::text[])))"
        )
        updated = await conn.fetch(
            f"""
            UPDATE contacts c SET
                name_enc = COALESCE(x.name, c.name_enc),
                name = CASE WHEN x.name IS NULL THEN c.name END,
                status = COALESCE(x.status, c.status),
                tags = COALESCE(x.tags, c.tags),
                groups = COALESCE(x.groups, c.groups),
                attributes = CASE WHEN x.attributes IS NULL THEN c.attributes
                    ELSE jsonb_strip_nulls(c.attributes || x.attributes) END,
                marketing_opt_in = CASE WHEN {changed} THEN x.opt_in
                    ELSE c.marketing_opt_in END,
                opt_in_source = CASE WHEN {changed} THEN $3 ELSE c.opt_in_source END,
                opt_in_changed_at = CASE WHEN {changed} THEN now()
                    ELSE c.opt_in_changed_at END,
                opted_out_at = CASE WHEN {changed}
                    THEN (CASE WHEN x.opt_in THEN NULL ELSE now() END)
                    ELSE c.opted_out_at END,
                updated_at = now()
            FROM {recordset}
            WHERE c.tenant_id = $1 AND c.customer_wa_id = x.wa_id
              AND NOT (x.wa_id = ANY($4::text[]))
            RETURNING (x.opt_in IS TRUE AND NOT c.marketing_opt_in) AS kept
            """,  # noqa: S608
            tenant_id,
            rows,
            source,
            done,
            sorted(CUSTOMER_SOURCES),
        )
        return UpsertCounts(
            created=len(done),
            updated=len(updated),
            opt_out_kept=sum(1 for r in updated if r["kept"]),
        )

    async def get_contact(self, tenant_id: str, contact_id: int) -> Contact | None:
        row = await self._pool.fetchrow(
            f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE tenant_id = $1 AND contact_id = $2",  # noqa: S608
            tenant_id,
            contact_id,
        )
        return _contact(row, self._ids) if row else None

    async def search_contacts(
        self, tenant_id: str, segment: Segment, *, limit: int, after_id: int = 0
    ) -> list[Contact]:
        where, args = segment_where(tenant_id, segment, self._ids)
        args += [after_id, limit]
        rows = await self._pool.fetch(
            f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE {where} "  # noqa: S608
            f"AND contact_id > ${len(args) - 1} ORDER BY contact_id LIMIT ${len(args)}",
            *args,
        )
        return [_contact(r, self._ids) for r in rows]

    async def count_contacts(self, tenant_id: str, segment: Segment) -> int:
        where, args = segment_where(tenant_id, segment, self._ids)
        count = await self._pool.fetchval(f"SELECT count(*) FROM contacts WHERE {where}", *args)  # noqa: S608
        return int(count)

    async def patch_contact(
        self, tenant_id: str, contact_id: int, patch: ContactPatch
    ) -> Contact | None:
        row = await self._pool.fetchrow(
            f"""
            UPDATE contacts SET
                name_enc = COALESCE($3, name_enc),
                name = CASE WHEN $3::bytea IS NULL THEN name END,
                status = COALESCE($4, status),
                tags = COALESCE($5::text[], tags),
                groups = COALESCE($6::text[], groups),
                attributes = CASE WHEN $7::jsonb IS NULL THEN attributes
                    ELSE jsonb_strip_nulls(attributes || $7::jsonb) END,
                updated_at = now()
            WHERE tenant_id = $1 AND contact_id = $2
            RETURNING {_CONTACT_COLUMNS}
            """,  # noqa: S608
            tenant_id,
            contact_id,
            self._ids.encrypt(patch.name),
            patch.status,
            list(dict.fromkeys(patch.tags)) if patch.tags is not None else None,
            list(dict.fromkeys(patch.groups)) if patch.groups is not None else None,
            _json(patch.attributes) if patch.attributes is not None else None,
        )
        return _contact(row, self._ids) if row else None

    async def set_marketing_opt_in(
        self,
        tenant_id: str,
        customer: CustomerIdentity,
        opt_in: bool,
        *,
        source: str,
        at: datetime,
    ) -> bool:
        """Record a preference for the person ``customer`` names (by any id, its ids
        linked); a webhook or error for an unknown customer creates the contact (an
        opt-out must be remembered before the first campaign)."""
        async with self._pool.acquire() as conn, conn.transaction():
            key = (await resolve_customer(conn, self._ids, tenant_id, customer)).key
            row = await conn.fetchval(
                """
                INSERT INTO contacts AS c (tenant_id, customer_wa_id, marketing_opt_in,
                    opt_in_source, opt_in_changed_at, opted_out_at, origin)
                VALUES ($1, $2, $3::boolean, $4::text, $5::timestamptz,
                    CASE WHEN $3::boolean THEN NULL ELSE $5::timestamptz END, $4::text)
                ON CONFLICT (tenant_id, customer_wa_id) DO UPDATE SET
                    marketing_opt_in = EXCLUDED.marketing_opt_in,
                    opt_in_source = EXCLUDED.opt_in_source,
                    opt_in_changed_at = EXCLUDED.opt_in_changed_at,
                    opted_out_at = EXCLUDED.opted_out_at,
                    updated_at = now()
                WHERE c.opt_in_changed_at IS NULL
                   OR c.opt_in_changed_at <= EXCLUDED.opt_in_changed_at
                RETURNING (xmax = 0)
                """,
                tenant_id,
                key,
                opt_in,
                source,
                at,
            )
        return row is not None

    async def marketing_states(self, tenant_id: str, wa_ids: Sequence[str]) -> dict[str, bool]:
        """``id → marketing_opt_in`` for every id (key and aliases) of the contacts that
        any of ``wa_ids`` (phone numbers, BSUIDs) names."""
        rows = await self._pool.fetch(
            """
            WITH keys AS (
                SELECT DISTINCT COALESCE(a.customer_key, g.id) AS key
                FROM unnest($2::text[]) AS g(id)
                LEFT JOIN customer_aliases a ON a.tenant_id = $1 AND a.alias = g.id
            )
            SELECT x.id, x.enc, c.marketing_opt_in
            FROM keys k JOIN contacts c ON c.tenant_id = $1 AND c.customer_wa_id = k.key
            CROSS JOIN LATERAL (
                SELECT c.customer_wa_id AS id, NULL::bytea AS enc
                UNION SELECT a.alias, a.alias_enc FROM customer_aliases a
                WHERE a.tenant_id = $1 AND a.customer_key = c.customer_wa_id
            ) AS x
            """,
            tenant_id,
            [self._ids.key(tenant_id, i) for i in wa_ids],
        )
        return {i: r["marketing_opt_in"] for r, i in _ids_of(self._ids, rows)}

    async def opted_out_page(
        self, after: tuple[str, int], limit: int
    ) -> list[tuple[str, int, str]]:
        """``(tenant_id, contact_id, id)`` for every id of the opted-out contacts of the
        page (``limit`` contacts; all ids of a contact in the same page)."""
        rows = await self._pool.fetch(
            """
            WITH page AS (
                SELECT tenant_id, contact_id, customer_wa_id FROM contacts
                WHERE NOT marketing_opt_in AND (tenant_id, contact_id) > ($1, $2)
                ORDER BY tenant_id, contact_id LIMIT $3
            )
            SELECT p.tenant_id, p.contact_id, x.id, x.enc
            FROM page p CROSS JOIN LATERAL (
                SELECT p.customer_wa_id AS id, NULL::bytea AS enc
                UNION SELECT a.alias, a.alias_enc FROM customer_aliases a
                WHERE a.tenant_id = p.tenant_id AND a.customer_key = p.customer_wa_id
            ) AS x
            ORDER BY p.tenant_id, p.contact_id
            """,
            after[0],
            after[1],
            limit,
        )
        return [(r["tenant_id"], r["contact_id"], i) for r, i in _ids_of(self._ids, rows)]

    # ================================================================ campaigns

    async def candidates(
        self, tenant_id: str, segment: Segment, *, cap_window_s: int
    ) -> list[Candidate]:
        where, args = segment_where(tenant_id, segment, self._ids, alias="c")
        args.append(cap_window_s)
        rows = await self._pool.fetch(
            f"""
            SELECT c.contact_id, c.customer_wa_id, c.name, c.name_enc, c.status, c.attributes,
                {ADDRESS_SQL.format(tenant="c.tenant_id", key="c.customer_wa_id")} AS address,
                c.marketing_opt_in,
                (SELECT count(*) FROM campaign_recipients r
                 WHERE r.tenant_id = c.tenant_id AND r.wa_id = c.customer_wa_id
                   AND r.queued_at >= now() - make_interval(secs => ${len(args)})) AS recent
            FROM contacts c WHERE {where} ORDER BY c.contact_id
            """,  # noqa: S608
            *args,
        )
        return [
            Candidate(
                contact_id=r["contact_id"],
                wa_id=r["customer_wa_id"],
                name=self._ids.open(r["name_enc"], r["name"]),
                address=open_address(self._ids, r["address"], r["customer_wa_id"]),
                status=r["status"],
                attributes=_loads(r["attributes"]),
                marketing_opt_in=r["marketing_opt_in"],
                recent_sends=r["recent"],
            )
            for r in rows
        ]

    async def insert_campaign(
        self, campaign: NewCampaign, recipients: list[NewRecipient]
    ) -> Campaign:
        quiet = campaign.quiet_hours
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                INSERT INTO campaigns (campaign_id, tenant_id, account_id, name, status,
                    category, template, parameters, segment, timezone, scheduled_at,
                    quiet_start, quiet_end, rate_mps, cap_messages, cap_window_s, targeted)
                VALUES ($1, $2, $3, $4, 'draft', $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10,
                    $11, $12, $13, $14, $15, $16)
                RETURNING *
                """,
                campaign.campaign_id,
                campaign.tenant_id,
                campaign.account_id,
                campaign.name,
                campaign.category,
                _json(campaign.template),
                _json(campaign.parameters),
                _json(campaign.segment),
                campaign.timezone,
                campaign.scheduled_at,
                quiet.start if quiet else None,
                quiet.end if quiet else None,
                campaign.rate_mps,
                campaign.frequency_cap.max_messages,
                campaign.frequency_cap.window_hours * 3600,
                campaign.targeted,
            )
            await conn.copy_records_to_table(
                "campaign_recipients",
                columns=[
                    "campaign_id",
                    "contact_id",
                    "tenant_id",
                    "wa_id",
                    "state",
                    "reason",
                    "message_id",
                    "components_enc",
                ],
                records=[
                    (
                        campaign.campaign_id,
                        r.contact_id,
                        campaign.tenant_id,
                        r.wa_id,
                        r.state,
                        r.reason,
                        r.message_id,
                        self._ids.seal_json(r.components),
                    )
                    for r in recipients
                ],
            )
        return _campaign(row)

    async def get_campaign(self, tenant_id: str, campaign_id: str) -> Campaign | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM campaigns WHERE tenant_id = $1 AND campaign_id = $2",
            tenant_id,
            campaign_id,
        )
        return _campaign(row) if row else None

    async def list_campaigns(
        self, tenant_id: str, *, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[Campaign]:
        rows = await self._pool.fetch(
            "SELECT * FROM campaigns WHERE tenant_id = $1 "
            "AND ($3::timestamptz IS NULL OR (created_at, campaign_id) < ($3, $4::text)) "
            "ORDER BY created_at DESC, campaign_id DESC LIMIT $2",
            tenant_id,
            limit,
            *(after or (None, None)),
        )
        return [_campaign(r) for r in rows]

    async def transition(
        self,
        tenant_id: str,
        campaign_id: str,
        *,
        from_states: tuple[CampaignStatus, ...],
        to_state: CampaignStatus,
        reason: str | None = None,
    ) -> Campaign | None:
        row = await self._pool.fetchrow(
            """
            UPDATE campaigns SET status = $4,
                pause_reason = CASE WHEN $4 = 'paused' THEN $5 ELSE NULL END,
                started_at = CASE WHEN $4 = 'running' THEN COALESCE(started_at, now())
                    ELSE started_at END,
                completed_at = CASE WHEN $4 IN ('completed', 'cancelled') THEN now()
                    ELSE completed_at END,
                updated_at = now()
            WHERE tenant_id = $1 AND campaign_id = $2 AND status = ANY($3::text[])
            RETURNING *
            """,
            tenant_id,
            campaign_id,
            list(from_states),
            to_state,
            reason,
        )
        return _campaign(row) if row else None

    async def metrics(self, tenant_id: str, campaign_id: str) -> CampaignMetrics | None:
        campaign = await self._pool.fetchrow(
            "SELECT status, pause_reason, targeted FROM campaigns "
            "WHERE tenant_id = $1 AND campaign_id = $2",
            tenant_id,
            campaign_id,
        )
        if campaign is None:
            return None
        row = await self._pool.fetchrow(
            """
            SELECT
                count(*) FILTER (WHERE r.state = 'pending') AS pending,
                count(r.queued_at) AS queued,
                count(r.sent_at) AS sent,
                count(r.delivered_at) AS delivered,
                count(r.read_at) AS read,
                count(*) FILTER (WHERE r.state = 'failed') AS failed,
                count(*) FILTER (WHERE r.queued_at IS NOT NULL
                    AND c.last_inbound_at > r.queued_at) AS replied
            FROM campaign_recipients r
            LEFT JOIN contacts c ON c.tenant_id = r.tenant_id AND c.customer_wa_id = r.wa_id
            WHERE r.campaign_id = $1
            """,
            campaign_id,
        )
        excluded = await self._pool.fetch(
            "SELECT reason, count(*) AS n FROM campaign_recipients "
            "WHERE campaign_id = $1 AND state = 'excluded' GROUP BY reason",
            campaign_id,
        )
        failed = await self._pool.fetch(
            "SELECT coalesce(error_code::text, 'unknown') AS code, count(*) AS n "
            "FROM campaign_recipients WHERE campaign_id = $1 AND state = 'failed' GROUP BY 1",
            campaign_id,
        )
        assert row is not None
        return CampaignMetrics(
            campaign_id=campaign_id,
            status=campaign["status"],
            pause_reason=campaign["pause_reason"],
            targeted=campaign["targeted"],
            excluded={r["reason"]: r["n"] for r in excluded},
            pending=row["pending"],
            queued=row["queued"],
            sent=row["sent"],
            delivered=row["delivered"],
            read=row["read"],
            failed=row["failed"],
            failed_by_code={r["code"]: r["n"] for r in failed},
            replied=row["replied"],
        )

    async def record_status(self, change: StatusChange) -> bool:
        target = "failed" if change.status == "failed" else _STATUS_MAP.get(change.status)
        if target is None:
            return False  # queued / accepted: nothing new for the campaign
        rank_new = _RANK_SQL.format(col="$3::text")
        rank_old = _RANK_SQL.format(col="state")
        row = await self._pool.fetchval(
            f"""
            UPDATE campaign_recipients SET
                state = CASE WHEN {rank_old} >= 0 AND {rank_new} > {rank_old} AND state <> 'failed'
                    THEN $3 ELSE state END,
                error_code = CASE WHEN $3 = 'failed' AND state <> 'failed' THEN $4
                    ELSE error_code END,
                queued_at = COALESCE(queued_at, $5),
                sent_at = CASE WHEN $3 IN ('sent', 'delivered', 'read')
                    THEN COALESCE(sent_at, $5) ELSE sent_at END,
                delivered_at = CASE WHEN $3 IN ('delivered', 'read')
                    THEN COALESCE(delivered_at, $5) ELSE delivered_at END,
                read_at = CASE WHEN $3 = 'read' THEN COALESCE(read_at, $5) ELSE read_at END,
                failed_at = CASE WHEN $3 = 'failed' THEN COALESCE(failed_at, $5)
                    ELSE failed_at END
            WHERE message_id = $1 AND tenant_id = $2 AND state <> 'excluded'
            RETURNING 1
            """,  # noqa: S608
            change.message_id,
            change.tenant_id,
            target,
            change.error_code,
            change.at,
        )
        return row is not None

    async def pause_by_template(
        self, tenant_id: str, name: str, language: str | None, reason: str
    ) -> list[str]:
        rows = await self._pool.fetch(
            """
            UPDATE campaigns SET status = 'paused', pause_reason = $4, updated_at = now()
            WHERE tenant_id = $1 AND template ->> 'name' = $2
              AND ($3::text IS NULL OR template ->> 'language' = $3)
              AND status IN ('scheduled', 'running')
            RETURNING campaign_id
            """,
            tenant_id,
            name,
            language,
            reason,
        )
        return [r["campaign_id"] for r in rows]

    # ---------------------------------------------------------------- runner

    async def activate_due(self) -> list[StartedCampaign]:
        rows = await self._pool.fetch(
            """
            UPDATE campaigns SET status = 'running', started_at = COALESCE(started_at, now()),
                updated_at = now()
            WHERE status = 'scheduled' AND scheduled_at <= now()
            RETURNING campaign_id, tenant_id, account_id, name
            """
        )
        return [
            StartedCampaign(r["campaign_id"], r["tenant_id"], r["account_id"], r["name"])
            for r in rows
        ]

    async def running_campaigns(self) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT campaign_id FROM campaigns WHERE status = 'running' ORDER BY created_at"
        )
        return [r["campaign_id"] for r in rows]

    @asynccontextmanager
    async def campaign_batch(self, campaign_id: str) -> AsyncIterator[PgCampaignBatch]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield PgCampaignBatch(conn, campaign_id, self._ids)

    # ================================================================ reminders

    async def insert_reminder(self, reminder: NewReminder) -> tuple[Reminder, bool]:
        # the API names the customer by phone or BSUID: stored under the customer key
        keys = await customer_keys(self._pool, self._ids, reminder.tenant_id, [reminder.wa_id])
        if reminder.wa_id not in keys:  # a customer not met yet: linked to itself
            customer = identity_for(reminder.wa_id)
            async with self._pool.acquire() as conn, conn.transaction():
                key = (await resolve_customer(conn, self._ids, reminder.tenant_id, customer)).key
            keys[reminder.wa_id] = key
        reminder = replace(reminder, wa_id=keys[reminder.wa_id])
        row = await insert_reminder(self._pool, reminder)
        if row is not None:
            return _reminder(row, self._ids), True
        existing = await self._pool.fetchrow(
            f"SELECT {_REMINDER_COLUMNS} FROM reminders "  # noqa: S608
            "WHERE tenant_id = $1 AND dedupe_key = $2",
            reminder.tenant_id,
            reminder.dedupe_key,
        )
        assert existing is not None
        return _reminder(existing, self._ids), False

    async def get_reminder(self, tenant_id: str, reminder_id: str) -> Reminder | None:
        row = await self._pool.fetchrow(
            f"SELECT {_REMINDER_COLUMNS} FROM reminders "  # noqa: S608
            "WHERE tenant_id = $1 AND reminder_id = $2",
            tenant_id,
            reminder_id,
        )
        return _reminder(row, self._ids) if row else None

    async def list_reminders(
        self,
        tenant_id: str,
        *,
        state: str | None,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> list[Reminder]:
        rows = await self._pool.fetch(
            f"SELECT {_REMINDER_COLUMNS} FROM reminders "  # noqa: S608
            "WHERE tenant_id = $1 AND ($2::text IS NULL OR state = $2) "
            "AND ($4::timestamptz IS NULL OR (due_at, reminder_id) > ($4, $5::text)) "
            "ORDER BY due_at, reminder_id LIMIT $3",
            tenant_id,
            state,
            limit,
            *(after or (None, None)),
        )
        return [_reminder(r, self._ids) for r in rows]

    async def cancel_reminder(self, tenant_id: str, reminder_id: str) -> Reminder | None:
        row = await self._pool.fetchrow(
            "UPDATE reminders SET state = 'cancelled', updated_at = now() "  # noqa: S608
            "WHERE tenant_id = $1 AND reminder_id = $2 AND state = 'pending' "
            f"RETURNING {_REMINDER_COLUMNS}",
            tenant_id,
            reminder_id,
        )
        return _reminder(row, self._ids) if row else None

    async def cancel_reference(self, tenant_id: str, kind: str, reference: str) -> int:
        return await cancel_reminders(
            self._pool, tenant_id, kind, reference, wa_id=None, outcome="resolved"
        )

    @asynccontextmanager
    async def due_batch(self) -> AsyncIterator[PgDueBatch]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield PgDueBatch(conn, self._ids)


class PgCampaignBatch:
    def __init__(
        self, conn: PoolConnectionProxy[asyncpg.Record], campaign_id: str, ids: Identities
    ) -> None:
        self._conn = conn
        self._id = campaign_id
        self._ids = ids

    async def lock(self) -> RunningCampaign | None:
        row = await self._conn.fetchrow(
            "SELECT *, clock_timestamp() AS now FROM campaigns "
            "WHERE campaign_id = $1 AND status = 'running' FOR UPDATE SKIP LOCKED",
            self._id,
        )
        if row is None:
            return None
        campaign = _campaign(row)
        return RunningCampaign(
            campaign_id=campaign.campaign_id,
            tenant_id=campaign.tenant_id,
            account_id=campaign.account_id,
            category=campaign.category,
            template=campaign.template,
            timezone=campaign.timezone,
            quiet_hours=campaign.quiet_hours,
            rate_mps=campaign.rate_mps,
            frequency_cap=campaign.frequency_cap,
            paced_until=row["paced_until"],
            now=row["now"],
        )

    async def inflight(self, window_s: float) -> int:
        count = await self._conn.fetchval(
            "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND state = 'queued' "
            "AND queued_at > clock_timestamp() - make_interval(secs => $2)",
            self._id,
            float(window_s),
        )
        return int(count)

    async def pending(self, limit: int, *, cap_window_s: int) -> list[PendingRecipient]:
        rows = await self._conn.fetch(
            f"""
            SELECT r.contact_id, r.wa_id, r.message_id, r.components, r.components_enc,
                c.name, c.name_enc,
                {_ADDRESS_R} AS address,
                COALESCE(c.status, 'inactive') AS status,
                COALESCE(c.attributes, '{{}}') AS attributes,
                COALESCE(c.marketing_opt_in, false) AS marketing_opt_in,
                (SELECT count(*) FROM campaign_recipients o
                 WHERE o.tenant_id = r.tenant_id AND o.wa_id = r.wa_id
                   AND o.campaign_id <> r.campaign_id
                   AND o.queued_at >= now() - make_interval(secs => $3)) AS recent
            FROM campaign_recipients r
            LEFT JOIN contacts c ON c.tenant_id = r.tenant_id AND c.customer_wa_id = r.wa_id
            WHERE r.campaign_id = $1 AND r.state = 'pending'
            ORDER BY r.contact_id LIMIT $2
            """,  # noqa: S608
            self._id,
            limit,
            cap_window_s,
        )
        return [
            PendingRecipient(
                candidate=Candidate(
                    contact_id=r["contact_id"],
                    wa_id=r["wa_id"],
                    name=self._ids.open(r["name_enc"], r["name"]),
                    status=r["status"],
                    attributes=_loads(r["attributes"]),
                    marketing_opt_in=r["marketing_opt_in"],
                    recent_sends=r["recent"],
                    address=open_address(self._ids, r["address"], r["wa_id"]),
                ),
                message_id=r["message_id"],
                components=self._ids.open_json(r["components_enc"], _loads(r["components"])) or [],
            )
            for r in rows
        ]

    async def mark_queued(self, contact_ids: list[int]) -> None:
        if not contact_ids:
            return
        # Status events may have moved a row on already: only 'pending' becomes 'queued'.
        await self._conn.execute(
            """
            UPDATE campaign_recipients SET queued_at = COALESCE(queued_at, clock_timestamp()),
                state = CASE WHEN state = 'pending' THEN 'queued' ELSE state END
            WHERE campaign_id = $1 AND contact_id = ANY($2::bigint[])
            """,
            self._id,
            contact_ids,
        )

    async def mark_excluded(self, rows: list[tuple[int, str]]) -> None:
        if not rows:
            return
        await self._conn.execute(
            """
            UPDATE campaign_recipients r SET state = 'excluded', reason = x.reason
            FROM unnest($2::bigint[], $3::text[]) AS x(contact_id, reason)
            WHERE r.campaign_id = $1 AND r.contact_id = x.contact_id AND r.state = 'pending'
            """,
            self._id,
            [c for c, _ in rows],
            [reason for _, reason in rows],
        )

    async def set_paced_until(self, at: datetime) -> None:
        await self._conn.execute(
            "UPDATE campaigns SET paced_until = $2 WHERE campaign_id = $1", self._id, at
        )

    async def complete_if_done(self) -> bool:
        row = await self._conn.fetchval(
            """
            UPDATE campaigns SET status = 'completed', completed_at = now(), updated_at = now()
            WHERE campaign_id = $1 AND status = 'running' AND NOT EXISTS (
                SELECT 1 FROM campaign_recipients WHERE campaign_id = $1 AND state = 'pending')
            RETURNING 1
            """,
            self._id,
        )
        return row is not None


class PgDueBatch:
    def __init__(self, conn: PoolConnectionProxy[asyncpg.Record], ids: Identities) -> None:
        self._conn = conn
        self._ids = ids
        self.next_due: datetime | None = None

    async def claim(self, limit: int) -> tuple[datetime, list[DueReminder]]:
        # the clock and the first pending reminder not due yet, in one round trip
        # (``reminders_due``: the partial index on pending rows' due_at)
        head = await self._conn.fetchrow(
            "SELECT clock_timestamp() AS now, (SELECT min(due_at) FROM reminders"
            " WHERE state = 'pending' AND due_at > clock_timestamp()) AS next_due"
        )
        if head is None:  # a SELECT without FROM returns its one row
            raise RuntimeError("no row from the clock query")
        now: datetime = head["now"]
        self.next_due = head["next_due"]
        rows = await self._conn.fetch(
            f"""
            SELECT r.*, c.status AS contact_status, c.marketing_opt_in, c.last_inbound_at,
                c.name AS contact_name, c.name_enc AS contact_name_enc, c.attributes,
                {_ADDRESS_R} AS address,
                (r.kind = 'payment_due' AND EXISTS (
                    SELECT 1 FROM orders o WHERE o.tenant_id = r.tenant_id
                      AND o.order_id = r.reference
                      AND (o.payment_status = 'paid' OR o.status = 'cancelled'))) AS resolved,
                (r.kind = 'restock' AND EXISTS (
                    SELECT 1 FROM products p WHERE p.tenant_id = r.tenant_id
                      AND p.sku = r.reference AND NOT (p.available AND p.stock > 0))) AS waiting
            FROM reminders r
            LEFT JOIN contacts c ON c.tenant_id = r.tenant_id AND c.customer_wa_id = r.wa_id
            WHERE r.state = 'pending' AND r.due_at <= $2
            ORDER BY r.due_at
            LIMIT $1
            FOR UPDATE OF r SKIP LOCKED
            """,  # noqa: S608
            limit,
            now,
        )
        return now, [
            DueReminder(
                reminder_id=r["reminder_id"],
                tenant_id=r["tenant_id"],
                account_id=r["account_id"],
                wa_id=r["wa_id"],
                address=open_address(self._ids, r["address"], r["wa_id"]),
                kind=r["kind"],
                category=r["category"],
                text=r["text"],
                template=_loads(r["template"]) if r["template"] is not None else None,
                message_id=r["message_id"],
                contact_status=r["contact_status"],
                marketing_opt_in=r["marketing_opt_in"] is not False,
                last_inbound_at=r["last_inbound_at"],
                name=self._ids.open(r["contact_name_enc"], r["contact_name"]),
                attributes=_loads(r["attributes"]) if r["attributes"] is not None else {},
                resolved=r["resolved"],
                waiting=r["waiting"],
            )
            for r in rows
        ]

    async def fired(self, reminder_id: str, outcome: str) -> None:
        await self._conn.execute(
            "UPDATE reminders SET state = 'fired', outcome = $2, fired_at = clock_timestamp(), "
            "updated_at = now() WHERE reminder_id = $1",
            reminder_id,
            outcome,
        )

    async def skipped(self, reminder_id: str, reason: str) -> None:
        await self._conn.execute(
            "UPDATE reminders SET state = 'skipped', outcome = $2, updated_at = now() "
            "WHERE reminder_id = $1",
            reminder_id,
            reason,
        )

    async def postpone(self, reminder_id: str, until: datetime) -> None:
        await self._conn.execute(
            "UPDATE reminders SET due_at = $2, updated_at = now() WHERE reminder_id = $1",
            reminder_id,
            until,
        )
