"""PostgreSQL access (asyncpg), schema ``tenant``: the :class:`~flowchat_tenant.ports.TenantStore`.

Rows are mapped here and only here: tenants come back as
:class:`~flowchat_tenant.models.Tenant`, accounts and API keys as
:class:`~flowchat_tenant.records.StoredAccount` / :class:`~flowchat_tenant.records.StoredApiKey`.

Every query reached from the public API is scoped by ``tenant_id``; only the
internal lookups (by account id, phone number id, WABA id, Twilio number,
verify-token digest, API key id) search across tenants, because that is their job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from flowchat_tenant.errors import Conflict
from flowchat_tenant.models import Tenant
from flowchat_tenant.records import (
    ACCOUNT_FIELDS,
    SECRET_FIELDS,
    TENANT_FIELDS,
    Fields,
    NumberRef,
    StoredAccount,
    StoredApiKey,
)

ENCRYPTED_COLUMNS = tuple(SECRET_FIELDS.values())
_UNIQUE_FIELDS = {
    "accounts_phone_number_id_key": "phone_number_id",
    "accounts_twilio_number_key": "twilio_number",
}
Mapped = TypeVar("Mapped")
_ACCOUNT_WITH_TENANT = """
    SELECT a.*, t.status AS tenant_status
    FROM accounts a JOIN tenants t ON t.id = a.tenant_id
"""


def _tenant(record: asyncpg.Record) -> Tenant:
    return Tenant(
        tenant_id=record["id"],
        name=record["name"],
        business_name=record["business_name"],
        status=record["status"],
        timezone=record["timezone"],
        locale=record["locale"],
        currency=record["currency"].strip(),
        tax_rate=record["tax_rate"].normalize(),
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )


def _account(record: asyncpg.Record) -> StoredAccount:
    """An account row (``a.*``, with ``tenant_status`` when the query joined it)."""
    return StoredAccount(
        id=record["id"],
        tenant_id=record["tenant_id"],
        provider=record["provider"],
        status=record["status"],
        phone_number_id=record["phone_number_id"],
        waba_id=record["waba_id"],
        display_phone_number=record["display_phone_number"],
        app_id=record["app_id"],
        app_secret_enc=record["app_secret_enc"],
        access_token_enc=record["access_token_enc"],
        verify_token_enc=record["verify_token_enc"],
        verify_token_hash=record["verify_token_hash"],
        twilio_account_sid=record["twilio_account_sid"],
        twilio_auth_token_enc=record["twilio_auth_token_enc"],
        twilio_number=record["twilio_number"],
        tier=record["tier"],
        throughput_mps=record["throughput_mps"],
        throughput_pinned=record["throughput_pinned"],
        verified_name=record["verified_name"],
        quality_rating=record["quality_rating"],
        throughput_level=record["throughput_level"],
        messaging_limit_tier=record["messaging_limit_tier"],
        health_checked_at=record["health_checked_at"],
        health_error=record["health_error"],
        version=record["version"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
        tenant_status=record.get("tenant_status"),
    )


def _api_key(record: asyncpg.Record) -> StoredApiKey:
    """An API key row (``k.*``, with ``tenant_status`` when the query joined it)."""
    return StoredApiKey(
        id=record["id"],
        tenant_id=record["tenant_id"],
        name=record["name"],
        scopes=tuple(record["scopes"]),
        key_hash=record["key_hash"],
        created_at=record["created_at"],
        last_used_at=record["last_used_at"],
        revoked_at=record["revoked_at"],
        tenant_status=record.get("tenant_status"),
    )


def _maybe(
    mapper: Callable[[asyncpg.Record], Mapped], record: asyncpg.Record | None
) -> Mapped | None:
    return mapper(record) if record is not None else None


def _set_clause(changes: Fields, allowed: frozenset[str], first: int) -> tuple[str, list[Any]]:
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    names = sorted(changes)
    clause = ", ".join(f"{name} = ${first + i}" for i, name in enumerate(names))
    return clause, [changes[name] for name in names]


def _conflict(exc: asyncpg.UniqueViolationError) -> Conflict:
    field = _UNIQUE_FIELDS.get(exc.constraint_name or "", "id")
    return Conflict(f"an account with this {field} is already registered", field=field)


class Repository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ping(self) -> bool:
        return bool(await self._pool.fetchval("SELECT 1"))

    # --- tenants -------------------------------------------------------------

    async def insert_tenant(self, values: Fields) -> Tenant:
        names = sorted(values)
        sql = (
            f"INSERT INTO tenants ({', '.join(names)}) "  # noqa: S608 - names from the code
            f"VALUES ({', '.join(f'${i + 1}' for i in range(len(names)))}) RETURNING *"
        )
        record = await self._pool.fetchrow(sql, *(values[n] for n in names))
        assert record is not None
        return _tenant(record)

    async def tenant(self, tenant_id: str) -> Tenant | None:
        return _maybe(
            _tenant, await self._pool.fetchrow("SELECT * FROM tenants WHERE id = $1", tenant_id)
        )

    async def tenants(self, *, limit: int, after: str | None) -> list[Tenant]:
        records = await self._pool.fetch(
            "SELECT * FROM tenants WHERE $1::text IS NULL OR id > $1 ORDER BY id LIMIT $2",
            after,
            limit,
        )
        return [_tenant(r) for r in records]

    async def update_tenant(self, tenant_id: str, changes: Fields) -> Tenant | None:
        """Update a tenant; a status change bumps its accounts' versions (their answers change)."""
        clause, args = _set_clause(changes, TENANT_FIELDS, 2)
        async with self._pool.acquire() as conn, conn.transaction():
            row = _maybe(
                _tenant,
                await conn.fetchrow(
                    f"UPDATE tenants SET {clause}, updated_at = now() "  # noqa: S608
                    "WHERE id = $1 RETURNING *",
                    tenant_id,
                    *args,
                ),
            )
            if row is not None and "status" in changes:
                await conn.execute(
                    "UPDATE accounts SET version = version + 1, updated_at = now() "
                    "WHERE tenant_id = $1",
                    tenant_id,
                )
        return row

    # --- accounts ------------------------------------------------------------

    async def insert_account(self, values: Fields) -> StoredAccount:
        names = sorted(values)
        sql = (
            f"INSERT INTO accounts ({', '.join(names)}) "  # noqa: S608 - names from the code
            f"VALUES ({', '.join(f'${i + 1}' for i in range(len(names)))}) RETURNING *"
        )
        try:
            record = await self._pool.fetchrow(sql, *(values[n] for n in names))
        except asyncpg.UniqueViolationError as exc:
            raise _conflict(exc) from None
        assert record is not None
        return _account(record)

    async def account(self, tenant_id: str, account_id: str) -> StoredAccount | None:
        return _maybe(
            _account,
            await self._pool.fetchrow(
                "SELECT * FROM accounts WHERE tenant_id = $1 AND id = $2", tenant_id, account_id
            ),
        )

    async def accounts(self, tenant_id: str) -> list[StoredAccount]:
        records = await self._pool.fetch(
            "SELECT * FROM accounts WHERE tenant_id = $1 ORDER BY created_at, id", tenant_id
        )
        return [_account(r) for r in records]

    async def update_account(
        self, tenant_id: str, account_id: str, changes: Fields
    ) -> StoredAccount | None:
        """Apply ``changes`` and bump the version (every change invalidates caches)."""
        clause, args = _set_clause(changes, ACCOUNT_FIELDS, 3)
        try:
            return _maybe(
                _account,
                await self._pool.fetchrow(
                    f"UPDATE accounts SET {clause}, version = version + 1, "  # noqa: S608
                    "updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING *",
                    tenant_id,
                    account_id,
                    *args,
                ),
            )
        except asyncpg.UniqueViolationError as exc:
            raise _conflict(exc) from None

    async def delete_account(self, tenant_id: str, account_id: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM accounts WHERE tenant_id = $1 AND id = $2", tenant_id, account_id
        )
        return status.endswith(" 1")

    async def record_health(
        self, account_id: str, health: Fields, *, throughput_mps: int | None
    ) -> StoredAccount | None:
        """Store a health reading; the version moves only when what clients see changes."""
        return _maybe(
            _account,
            await self._pool.fetchrow(
                """
                UPDATE accounts SET
                    version = version + CASE WHEN
                        (verified_name, quality_rating, throughput_level, messaging_limit_tier,
                         health_error)
                        IS DISTINCT FROM ($2, $3, $4, $5, $6)
                        OR (NOT throughput_pinned AND $7::int IS NOT NULL
                            AND throughput_mps <> $7::int)
                        THEN 1 ELSE 0 END,
                    updated_at = CASE WHEN
                        (verified_name, quality_rating, throughput_level, messaging_limit_tier,
                         health_error)
                        IS DISTINCT FROM ($2, $3, $4, $5, $6)
                        OR (NOT throughput_pinned AND $7::int IS NOT NULL
                            AND throughput_mps <> $7::int)
                        THEN now() ELSE updated_at END,
                    throughput_mps = CASE WHEN NOT throughput_pinned AND $7::int IS NOT NULL
                        THEN $7::int ELSE throughput_mps END,
                    verified_name = $2, quality_rating = $3, throughput_level = $4,
                    messaging_limit_tier = $5, health_error = $6, health_checked_at = now()
                WHERE id = $1
                RETURNING *
                """,
                account_id,
                health.get("verified_name"),
                health.get("quality_rating"),
                health.get("throughput_level"),
                health.get("messaging_limit_tier"),
                health.get("health_error"),
                throughput_mps,
            ),
        )

    async def record_health_error(self, account_id: str, error: str) -> StoredAccount | None:
        """A failed health reading: keep the last good values, note the error."""
        return _maybe(
            _account,
            await self._pool.fetchrow(
                "UPDATE accounts SET health_checked_at = now(), health_error = $2, "
                "version = version + CASE WHEN health_error IS DISTINCT FROM $2 THEN 1 ELSE 0 END "
                "WHERE id = $1 RETURNING *",
                account_id,
                error,
            ),
        )

    async def meta_accounts_for_health(self, *, after: str | None, limit: int) -> list[NumberRef]:
        records = await self._pool.fetch(
            "SELECT id, tenant_id, phone_number_id, access_token_enc FROM accounts "
            "WHERE provider = 'meta' AND status = 'active' AND ($1::text IS NULL OR id > $1) "
            "ORDER BY id LIMIT $2",
            after,
            limit,
        )
        return [
            NumberRef(r["id"], r["tenant_id"], r["phone_number_id"], r["access_token_enc"])
            for r in records
        ]

    # --- internal lookups (across tenants) -----------------------------------

    async def account_by_id(self, account_id: str) -> StoredAccount | None:
        return _maybe(
            _account,
            await self._pool.fetchrow(_ACCOUNT_WITH_TENANT + " WHERE a.id = $1", account_id),
        )

    async def account_by_phone_number_id(self, phone_number_id: str) -> StoredAccount | None:
        return _maybe(
            _account,
            await self._pool.fetchrow(
                _ACCOUNT_WITH_TENANT + " WHERE a.phone_number_id = $1", phone_number_id
            ),
        )

    async def accounts_by_waba(self, waba_id: str) -> list[StoredAccount]:
        """Every account of a WABA (Meta's account-level webhooks name only the WABA)."""
        records = await self._pool.fetch(
            _ACCOUNT_WITH_TENANT + " WHERE a.waba_id = $1 ORDER BY a.created_at, a.id", waba_id
        )
        return [_account(r) for r in records]

    async def account_by_twilio_number(self, number: str) -> StoredAccount | None:
        return _maybe(
            _account,
            await self._pool.fetchrow(_ACCOUNT_WITH_TENANT + " WHERE a.twilio_number = $1", number),
        )

    async def verify_token_known(self, token_hash: str) -> bool:
        return bool(
            await self._pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM accounts WHERE verify_token_hash = $1)", token_hash
            )
        )

    # --- API keys ------------------------------------------------------------

    async def insert_api_key(self, values: Fields) -> StoredApiKey:
        record = await self._pool.fetchrow(
            "INSERT INTO api_keys (id, tenant_id, name, scopes, key_hash) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING *",
            values["id"],
            values["tenant_id"],
            values["name"],
            values["scopes"],
            values["key_hash"],
        )
        assert record is not None
        return _api_key(record)

    async def api_keys(self, tenant_id: str) -> list[StoredApiKey]:
        records = await self._pool.fetch(
            "SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id", tenant_id
        )
        return [_api_key(r) for r in records]

    async def api_key(self, tenant_id: str, key_id: str) -> StoredApiKey | None:
        return _maybe(
            _api_key,
            await self._pool.fetchrow(
                "SELECT * FROM api_keys WHERE tenant_id = $1 AND id = $2", tenant_id, key_id
            ),
        )

    async def revoke_api_key(self, tenant_id: str, key_id: str) -> StoredApiKey | None:
        return _maybe(
            _api_key,
            await self._pool.fetchrow(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
                "WHERE tenant_id = $1 AND id = $2 RETURNING *",
                tenant_id,
                key_id,
            ),
        )

    async def api_key_for_verify(self, key_id: str) -> StoredApiKey | None:
        return _maybe(
            _api_key,
            await self._pool.fetchrow(
                "SELECT k.*, t.status AS tenant_status FROM api_keys k "
                "JOIN tenants t ON t.id = k.tenant_id WHERE k.id = $1",
                key_id,
            ),
        )

    async def touch_api_key(self, key_id: str, *, min_interval_s: float) -> None:
        """Record a use (at most once per ``min_interval_s``, to spare a write per request)."""
        await self._pool.execute(
            "UPDATE api_keys SET last_used_at = now() WHERE id = $1 AND (last_used_at IS NULL "
            "OR last_used_at < now() - make_interval(secs => $2))",
            key_id,
            min_interval_s,
        )

    # --- key rotation ----------------------------------------------------------

    async def rotate_batch(
        self,
        *,
        after: str | None,
        limit: int,
        rotate: Callable[[bytes | None], bytes | None],
    ) -> tuple[str | None, int, int]:
        """Re-encrypt one batch of accounts in one transaction: (last id, rows, secrets)."""
        columns = ", ".join(ENCRYPTED_COLUMNS)
        async with self._pool.acquire() as conn, conn.transaction():
            records: Sequence[asyncpg.Record] = await conn.fetch(
                f"SELECT id, {columns} FROM accounts "  # noqa: S608 - names from the code
                "WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2 FOR UPDATE",
                after,
                limit,
            )
            if not records:
                return None, 0, 0
            updates = []
            done = 0
            for record in records:
                values = [rotate(record[c]) for c in ENCRYPTED_COLUMNS]
                done += sum(v is not None for v in values)
                updates.append((record["id"], *values))
            sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(ENCRYPTED_COLUMNS))
            await conn.executemany(
                f"UPDATE accounts SET {sets} WHERE id = $1",  # noqa: S608
                updates,
            )
            return str(records[-1]["id"]), len(records), done
