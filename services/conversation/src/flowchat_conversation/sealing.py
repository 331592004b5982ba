"""Customers' identities encrypted at rest (migration ``0008_sealed_identities``).

Every column that names a customer holds a keyed digest of the id
(:class:`~flowchat_platform.privacy.BlindIndex`, per tenant): ``customer_aliases.alias``
and ``customer_key``, hence the customer key in ``contacts``, ``orders``, ``handoffs``,
``reminders``, ``campaign_recipients``, ``handled_messages`` and the Redis session and
cart keys. The ids themselves live once, as Fernet tokens in
``customer_aliases.alias_enc``; names in ``contacts.name_enc``, a Flow's delivery
address in ``orders.delivery_address_enc``, a campaign send's parameters in
``campaign_recipients.components_enc``. :class:`Identities` is what the
repositories seal and open with.

Rows stored before encryption keep ids in clear until :func:`seal_loop` (started once
per replica) seals them, customer by customer, each in its own short transaction (all
of a customer's rows move to the digest key together); a customer who writes before
the pass reaches them is sealed in the message's transaction
(:func:`seal_customers`). The pass finds them through partial indexes of the rows in
clear (migration ``0009_sealing_state``), so a start with nothing left reads nothing.
When a new key is configured with an old one still listed, the pass then re-encrypts
every token under the newest, once (``sealing_state`` records the key each table was
rotated to and where a rotation cut short stopped). Both are idempotent: a pass cut
short starts over and finds only what is left.

Adapter code (SQL) over any asyncpg connection; no import of asyncpg itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from functools import partial
from typing import Any

from pydantic import SecretStr

from flowchat_conversation import metrics
from flowchat_platform.logs import get_logger
from flowchat_platform.privacy import IdentitySealer, identity_box, is_sealed, privacy_index
from flowchat_platform.sealing import SealingState, seal_pass

__all__ = [
    "CLEAR_HANDLED_SQL",
    "CLEAR_KEYS_SQL",
    "DIGEST_SQL",
    "Identities",
    "identities",
    "rotate_tokens",
    "seal_customers",
    "seal_legacy_batch",
    "seal_loop",
]

log = get_logger(__name__)

#: A stored key that is a digest (64 hex), in SQL (``{c}`` the column).
DIGEST_SQL = "{c} ~ '^[0-9a-f]{{64}}$'"


class Identities:
    """Seal and open customers' ids and names for one service instance.

    ``legacy``: rows stored in clear may remain (until the background pass has found
    none); while true, resolving a customer also looks for its ids in clear."""

    def __init__(self, sealer: IdentitySealer) -> None:
        self.sealer = sealer
        self.legacy = True

    def key(self, tenant_id: str, customer_id: str) -> str:
        """The stored form of an id (a customer key, an alias): its keyed digest."""
        return self.sealer.digest(tenant_id, customer_id)

    def encrypt(self, value: str | None) -> bytes | None:
        return self.sealer.box.encrypt(value)

    def open(self, token: bytes | None, stored: str | None = None) -> str | None:
        """The id or name: decrypted, else ``stored`` as it is (a row not sealed yet)."""
        return self.sealer.open(token, stored)

    def seal_json(self, value: Any) -> bytes | None:
        return None if value is None else self.encrypt(json.dumps(value, separators=(",", ":")))

    def open_json(self, token: bytes | None, stored: Any = None) -> Any:
        if token is None:
            return json.loads(stored) if isinstance(stored, str) else stored
        text = self.open(token)
        return json.loads(text) if text is not None else None

    def open_all(self, tokens: Iterable[bytes | None]) -> list[str]:
        return [t for t in (self.open(tok) for tok in tokens if tok is not None) if t]


def identities(
    encryption_keys: SecretStr | None,
    privacy_key: SecretStr | None,
    service_token: SecretStr | None,
) -> Identities:
    """The service's :class:`Identities`: the digests under the platform's privacy key
    (the same the suppression entries use), the tokens under
    ``FLOWCHAT_CONVERSATION_ENCRYPTION_KEYS``."""
    box = identity_box(encryption_keys, service_token, "FLOWCHAT_CONVERSATION_ENCRYPTION_KEYS")
    return Identities(IdentitySealer(box, privacy_index(privacy_key, service_token)))


# ------------------------------------------------------------- rows stored in clear

_NOT_DIGEST = "NOT (" + DIGEST_SQL + ") AND {c} NOT LIKE 'erased:%'"

#: The next ``$1`` customers ``(tenant_id, key)`` stored in clear after ``($2, $3)``: each
#: branch reads its table's ``*_unsealed`` partial index (migration 0009, the same
#: predicate), empty once every row is sealed.
CLEAR_KEYS_SQL = f"""
    SELECT DISTINCT tenant_id, key FROM (
        SELECT tenant_id, customer_key AS key FROM customer_aliases
        WHERE {_NOT_DIGEST.format(c="customer_key")}
        UNION SELECT tenant_id, customer_wa_id FROM contacts
        WHERE {_NOT_DIGEST.format(c="customer_wa_id")}
        UNION SELECT tenant_id, customer_wa_id FROM orders
        WHERE {_NOT_DIGEST.format(c="customer_wa_id")}
        UNION SELECT tenant_id, customer_wa_id FROM handoffs
        WHERE {_NOT_DIGEST.format(c="customer_wa_id")}
        UNION SELECT tenant_id, wa_id FROM reminders
        WHERE {_NOT_DIGEST.format(c="wa_id")}
        UNION SELECT tenant_id, wa_id FROM campaign_recipients
        WHERE {_NOT_DIGEST.format(c="wa_id")}
    ) AS k WHERE (tenant_id, key) > ($2, $3) ORDER BY 1, 2 LIMIT $1
"""  # noqa: S608

#: The next ``$1`` inbound dedupe rows whose conversation (``tenant:account:key``) names
#: the customer in clear (partial index ``handled_messages_unsealed``).
CLEAR_HANDLED_SQL = f"""
    SELECT tenant_id, provider_message_id, conversation FROM handled_messages
    WHERE NOT ({DIGEST_SQL.format(c="split_part(conversation, ':', 3)")})
      AND split_part(conversation, ':', 3) <> ''
    LIMIT $1
"""  # noqa: S608


#: ``(table, customer key column, primary key, value column, JSON?)``: the rows that
#: move to a customer's digest with a value of theirs to encrypt (``<value>_enc``).
_SEALED_VALUES: tuple[tuple[str, str, tuple[str, ...], str, bool], ...] = (
    ("contacts", "customer_wa_id", ("contact_id",), "name", False),
    ("orders", "customer_wa_id", ("order_id",), "delivery_address", True),
    ("campaign_recipients", "wa_id", ("campaign_id", "contact_id"), "components", True),
)


async def _move_and_seal(
    conn: Any,
    ids: Identities,
    table: tuple[str, str, tuple[str, ...], str, bool],
    tenant_id: str,
    key: str,
    new_key: str,
) -> None:
    """A customer's rows of one :data:`_SEALED_VALUES` table moved from the clear ``key``
    to ``new_key``, their value encrypted (kept when it already is): one read, one
    ``executemany``."""
    name, column, pk, value, as_json = table
    rows = await conn.fetch(
        f"SELECT {', '.join(pk)}, {value}::text AS value FROM {name} "  # noqa: S608
        f"WHERE tenant_id = $1 AND {column} = $2",
        tenant_id,
        key,
    )
    n = len(pk)
    match = " AND ".join(f"{c} = ${i + 1}" for i, c in enumerate(pk))
    await conn.executemany(
        f"UPDATE {name} SET {column} = ${n + 1}, {value} = NULL, "  # noqa: S608
        f"{value}_enc = COALESCE(${n + 2}, {value}_enc) WHERE {match}",
        [
            (
                *(r[c] for c in pk),
                new_key,
                ids.seal_json(json.loads(r["value"]) if r["value"] else None)
                if as_json
                else ids.encrypt(r["value"]),
            )
            for r in rows
        ],
    )


async def seal_customers(conn: Any, ids: Identities, tenant_id: str, keys: Iterable[str]) -> int:
    """Seal the customers stored under the clear ``keys`` of ``tenant_id``: their aliases
    become digests with tokens, every row under the key moves to the key's digest, their
    names and delivery addresses are encrypted. Inside the caller's transaction."""
    sealed = 0
    for key in sorted({k for k in keys if not is_sealed(k)}):
        new_key = ids.key(tenant_id, key)
        aliases = await conn.fetch(
            "SELECT alias, kind, customer_key FROM customer_aliases WHERE tenant_id = $1 "
            "AND (customer_key = $2 OR alias = $2)",
            tenant_id,
            key,
        )
        clear = {
            r["alias"]: r["kind"]
            for r in aliases
            if r["customer_key"] == key and not is_sealed(r["alias"])
        }
        if not any(r["alias"] == key for r in aliases):  # the key is an alias of itself
            clear[key] = "parent" if ".ENT." in key else "bsuid" if "." in key else "phone"
        await conn.execute(
            """
            INSERT INTO customer_aliases (tenant_id, alias, customer_key, kind, alias_enc)
            SELECT $1, g.alias, $2, g.kind, g.enc
            FROM unnest($3::text[], $4::text[], $5::bytea[]) AS g(alias, kind, enc)
            ON CONFLICT (tenant_id, alias) DO NOTHING
            """,
            tenant_id,
            new_key,
            [ids.key(tenant_id, a) for a in clear],
            list(clear.values()),
            [ids.encrypt(a) for a in clear],
        )
        await conn.execute(
            "DELETE FROM customer_aliases WHERE tenant_id = $1 AND alias = ANY($2::text[])",
            tenant_id,
            list(clear),
        )
        await conn.execute(
            "UPDATE customer_aliases SET customer_key = $3 "
            "WHERE tenant_id = $1 AND customer_key = $2",
            tenant_id,
            key,
            new_key,
        )
        for sealed_values in _SEALED_VALUES:
            await _move_and_seal(conn, ids, sealed_values, tenant_id, key, new_key)
        for table, column in (("handoffs", "customer_wa_id"), ("reminders", "wa_id")):
            await conn.execute(
                f"UPDATE {table} SET {column} = $3 WHERE tenant_id = $1 AND {column} = $2",  # noqa: S608
                tenant_id,
                key,
                new_key,
            )
        sealed += 1
    return sealed


async def seal_legacy_batch(
    conn: Any,
    ids: Identities,
    limit: int,
    after: tuple[str, str] = ("", ""),
    *,
    customers: bool = True,
) -> tuple[int, int, tuple[str, str] | None]:
    """Seal up to ``limit`` customers still stored in clear, after the cursor ``after``
    (tenant, key), each in a savepoint of the caller's transaction (one that cannot be
    sealed, e.g. a duplicate contact under its digest, is left in clear and counted);
    and up to ``limit`` inbound dedupe rows. ``(sealed, failed, next cursor)``; the
    cursor is None once no customer is left after it. ``customers=False``: only the
    dedupe rows."""
    rows = await conn.fetch(CLEAR_KEYS_SQL, limit, *after) if customers else []
    failed = 0
    for row in rows:
        try:
            async with conn.transaction():  # a savepoint
                await seal_customers(conn, ids, row["tenant_id"], [row["key"]])
        except Exception as exc:  # noqa: BLE001 - left in clear, the pass goes on
            failed += 1
            log.warning("a customer could not be sealed", error=type(exc).__name__)
    # inbound dedupe rows name the conversation ``tenant:account:key``
    handled = await conn.fetch(CLEAR_HANDLED_SQL, limit)
    await conn.executemany(
        "UPDATE handled_messages SET conversation = $3 "
        "WHERE tenant_id = $1 AND provider_message_id = $2",
        [(r["tenant_id"], r["provider_message_id"], _sealed_conversation(ids, r)) for r in handled],
    )
    cursor = (rows[-1]["tenant_id"], rows[-1]["key"]) if len(rows) == limit else None
    return len(rows) - failed + len(handled), failed, cursor


def _sealed_conversation(ids: Identities, row: Any) -> str:
    """An inbound dedupe row's conversation ``tenant:account:key`` with the key sealed."""
    tenant, account, key = row["conversation"].split(":", 2)
    return f"{tenant}:{account}:{ids.key(row['tenant_id'], key)}"


# ------------------------------------------------------------------ key rotation

#: ``(table, primary key columns, token column)`` of every token the service stores.
_TOKENS = (
    ("customer_aliases", ("tenant_id", "alias"), "alias_enc"),
    ("contacts", ("contact_id",), "name_enc"),
    ("orders", ("order_id",), "delivery_address_enc"),
    ("campaign_recipients", ("campaign_id", "contact_id"), "components_enc"),
)


async def rotate_tokens(
    conn: Any, ids: Identities, table: str, after: list[Any] | None, limit: int
) -> tuple[int, list[Any] | None]:
    """Re-encrypt one batch of ``table``'s tokens under the newest key (the rows locked:
    a token written meanwhile is not overwritten by an older one); the key of the last
    row, where the next batch starts (None: done)."""
    _, pk, column = next(t for t in _TOKENS if t[0] == table)
    cols = ", ".join(pk)
    args: list[Any] = [limit]
    where = f"{column} IS NOT NULL"
    if after is not None:
        args += list(after)
        placeholders = ", ".join(f"${i + 2}" for i in range(len(pk)))
        where += f" AND ({cols}) > ({placeholders})"
    rows = await conn.fetch(
        f"SELECT {cols}, {column} AS token FROM {table} WHERE {where} "  # noqa: S608
        f"ORDER BY {cols} LIMIT $1 FOR UPDATE",
        *args,
    )
    match = " AND ".join(f"{c} = ${i + 2}" for i, c in enumerate(pk))
    await conn.executemany(
        f"UPDATE {table} SET {column} = $1 WHERE {match}",  # noqa: S608
        [(ids.sealer.box.rotate(bytes(r["token"])), *(r[c] for c in pk)) for r in rows],
    )
    if len(rows) < limit:
        return len(rows), None
    return len(rows), [rows[-1][c] for c in pk]


async def seal_loop(pool: Any, ids: Identities, *, batch: int, pause_s: float) -> None:
    """The background pass (once at start; again after a failure): seal every customer
    stored in clear (found through the ``*_unsealed`` partial indexes of migration
    ``0009_sealing_state``: nothing to read once all are sealed), then, the first time an
    old key is still configured beside a new one, re-encrypt every token under the newest
    (recorded in ``sealing_state``: once per new key, resumed after a restart). Short
    transactions, a pause between them."""
    state = SealingState(pool)
    while True:
        try:
            total = failures = 0
            cursor: tuple[str, str] | None = ("", "")
            while cursor is not None:
                async with pool.acquire() as conn, conn.transaction():
                    n, failed, cursor = await seal_legacy_batch(conn, ids, batch, cursor)
                metrics.SEALED.labels("sealed").inc(n)
                metrics.SEALED.labels("failed").inc(failed)
                total, failures = total + n, failures + failed
                if cursor is not None or n:
                    await asyncio.sleep(pause_s)
            # inbound dedupe rows left (more than a batch): on, until none
            while n:
                async with pool.acquire() as conn, conn.transaction():
                    n, _, _ = await seal_legacy_batch(conn, ids, batch, customers=False)
                metrics.SEALED.labels("sealed").inc(n)
                total += n
                if n:
                    await asyncio.sleep(pause_s)
            ids.legacy = failures > 0
            if total or failures:
                log.info(
                    "customer identities encrypted at rest",
                    action="sealed",
                    rows=total,
                    failed=failures,
                )
            box = ids.sealer.box
            if box.key_count > 1:
                for table, _, _ in _TOKENS:
                    rotated = await seal_pass(
                        state.step(
                            table,
                            partial(_rotate_batch, pool, ids, table),
                            key_id=box.key_id,
                            start=None,
                        ),
                        batch=batch,
                        pause_s=pause_s,
                        counted=metrics.SEALED.labels("rotated").inc,
                    )
                    if rotated:
                        log.info("tokens re-encrypted", action="rotated", table=table, rows=rotated)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - start over after a pause
            log.warning("encrypting customer identities failed", error=repr(exc))
            await asyncio.sleep(30)


async def _rotate_batch(
    pool: Any, ids: Identities, table: str, after: list[Any] | None, limit: int
) -> tuple[int, list[Any] | None]:
    async with pool.acquire() as conn, conn.transaction():
        return await rotate_tokens(conn, ids, table, after, limit)
