"""PostgreSQL access (asyncpg), schema ``tenant``: the :class:`~flowchat_tenant.ports.TenantStore`.

Rows are mapped here and only here: tenants come back as
:class:`~flowchat_tenant.models.Tenant`, accounts and API keys as
:class:`~flowchat_tenant.records.StoredAccount` / :class:`~flowchat_tenant.records.StoredApiKey`.

Every query reached from the public API is scoped by ``tenant_id``; only the
internal lookups (by account id, phone number id, WABA id, Twilio number,
verify-token digest, API key id) search across tenants, because that is their job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from flowchat_tenant.errors import Conflict, NotFound
from flowchat_tenant.models import Tenant
from flowchat_tenant.ports import AuditEntry
from flowchat_tenant.records import (
    ACCOUNT_FIELDS,
    SECRET_FIELDS,
    TENANT_FIELDS,
    USER_FIELDS,
    AuditRecord,
    Fields,
    NumberRef,
    StoredAccount,
    StoredApiKey,
    StoredUser,
    UserSession,
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


def _user(record: asyncpg.Record, prefix: str = "") -> StoredUser:
    """A user row (``u.*`` with ``tenant_status``; ``prefix`` when the columns are aliased)."""

    def col(name: str) -> Any:
        return record[prefix + name]

    return StoredUser(
        id=col("id"),
        tenant_id=col("tenant_id"),
        email=col("email"),
        role=col("role"),
        status=col("status"),
        password_hash=col("password_hash"),
        name=col("name"),
        display_name=col("display_name"),
        avatar_url=col("avatar_url"),
        language=col("language"),
        timezone=col("timezone"),
        notifications=json.loads(col("notifications")),
        token_version=col("token_version"),
        last_login_at=col("last_login_at"),
        created_at=col("created_at"),
        updated_at=col("updated_at"),
        tenant_status=record.get("tenant_status"),
    )


def _session(record: asyncpg.Record) -> UserSession:
    return UserSession(
        id=record["s_id"],
        user=_user(record),
        created_at=record["s_created_at"],
        expires_at=record["s_expires_at"],
        revoked_at=record["s_revoked_at"],
        live=record["s_live"],
    )


def _audit(record: asyncpg.Record) -> AuditRecord:
    return AuditRecord(
        id=record["id"],
        at=record["at"],
        tenant_id=record["tenant_id"],
        actor_type=record["actor_type"],
        actor_id=record["actor_id"],
        action=record["action"],
        target_type=record["target_type"],
        target_id=record["target_id"],
        details=json.loads(record["details"]),
        ip=record["ip"],
        user_agent=record["user_agent"],
    )


_USER = (
    "SELECT u.*, t.status AS tenant_status FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id"
)
_SESSION = """
    SELECT u.*, t.status AS tenant_status, s.id AS s_id, s.created_at AS s_created_at,
           s.expires_at AS s_expires_at, s.revoked_at AS s_revoked_at,
           (s.revoked_at IS NULL AND s.expires_at > now()) AS s_live
    FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN tenants t ON t.id = u.tenant_id
"""


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

    async def accounts(
        self,
        tenant_id: str,
        *,
        limit: int | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[StoredAccount]:
        records = await self._pool.fetch(
            "SELECT * FROM accounts WHERE tenant_id = $1 "
            "AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::text)) "
            "ORDER BY created_at, id LIMIT $4",
            tenant_id,
            *(after or (None, None)),
            limit,
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

    async def accounts_by_ids(self, account_ids: list[str]) -> list[StoredAccount]:
        """The accounts among ``account_ids`` that exist (one query; unknown ids left out)."""
        records = await self._pool.fetch(
            _ACCOUNT_WITH_TENANT + " WHERE a.id = ANY($1::text[])", account_ids
        )
        return [_account(r) for r in records]

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

    async def api_keys(
        self,
        tenant_id: str,
        *,
        limit: int | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[StoredApiKey]:
        records = await self._pool.fetch(
            "SELECT * FROM api_keys WHERE tenant_id = $1 "
            "AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::text)) "
            "ORDER BY created_at, id LIMIT $4",
            tenant_id,
            *(after or (None, None)),
            limit,
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

    # --- users ------------------------------------------------------------------

    async def insert_user(self, values: Fields) -> StoredUser:
        names = sorted(values)
        sql = (
            f"WITH u AS (INSERT INTO users ({', '.join(names)}) "  # noqa: S608 - names from code
            f"VALUES ({', '.join(f'${i + 1}' for i in range(len(names)))}) RETURNING *) "
            "SELECT u.*, t.status AS tenant_status FROM u LEFT JOIN tenants t ON t.id = u.tenant_id"
        )
        try:
            record = await self._pool.fetchrow(sql, *(values[n] for n in names))
        except asyncpg.UniqueViolationError:
            raise Conflict("a user with this e-mail address exists", field="email") from None
        except asyncpg.ForeignKeyViolationError:
            raise NotFound("tenant", str(values.get("tenant_id"))) from None
        assert record is not None
        return _user(record)

    async def user(self, tenant_id: str | None, user_id: str) -> StoredUser | None:
        """One user of ``tenant_id`` (None: an operator user)."""
        return _maybe(
            _user,
            await self._pool.fetchrow(
                _USER + " WHERE u.id = $1 AND u.tenant_id IS NOT DISTINCT FROM $2",
                user_id,
                tenant_id,
            ),
        )

    async def user_by_email(self, email: str) -> StoredUser | None:
        return _maybe(
            _user,
            await self._pool.fetchrow(
                _USER + " WHERE lower(u.email) = lower($1) AND u.status <> 'deleted'", email
            ),
        )

    async def users(
        self, tenant_id: str | None, *, limit: int, after: str | None
    ) -> list[StoredUser]:
        records = await self._pool.fetch(
            _USER + " WHERE u.tenant_id IS NOT DISTINCT FROM $1 AND u.status <> 'deleted' "
            "AND ($2::text IS NULL OR u.id > $2) ORDER BY u.id LIMIT $3",
            tenant_id,
            after,
            limit,
        )
        return [_user(r) for r in records]

    async def update_user(
        self, user_id: str, changes: Fields, *, end_sessions: bool = False
    ) -> StoredUser | None:
        clause, args = _set_clause(changes, USER_FIELDS, 2)
        if "notifications" in changes:
            args = [json.dumps(a) if isinstance(a, dict) else a for a in args]
        bump = ", token_version = token_version + 1" if end_sessions else ""
        async with self._pool.acquire() as conn, conn.transaction():
            record = await conn.fetchrow(
                f"WITH u AS (UPDATE users SET {clause}{bump}, updated_at = now() "  # noqa: S608
                "WHERE id = $1 RETURNING *) "
                "SELECT u.*, t.status AS tenant_status FROM u LEFT JOIN tenants t "
                "ON t.id = u.tenant_id",
                user_id,
                *args,
            )
            if record is not None and end_sessions:
                await conn.execute(
                    "UPDATE sessions SET revoked_at = now() "
                    "WHERE user_id = $1 AND revoked_at IS NULL",
                    user_id,
                )
        return _maybe(_user, record)

    async def active_owners(self, tenant_id: str) -> int:
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM users WHERE tenant_id = $1 AND role = 'owner' "
                "AND status = 'active'",
                tenant_id,
            )
        )

    async def insert_user_token(
        self, user_id: str, token_hash: str, kind: str, ttl_s: float
    ) -> None:
        """A new one-time token; the user's earlier unused tokens of the kind stop working."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE user_tokens SET used_at = now() "
                "WHERE user_id = $1 AND kind = $2 AND used_at IS NULL",
                user_id,
                kind,
            )
            await conn.execute(
                "INSERT INTO user_tokens (token_hash, user_id, kind, expires_at) "
                "VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
                token_hash,
                user_id,
                kind,
                ttl_s,
            )

    async def use_user_token(self, token_hash: str, kind: str) -> StoredUser | None:
        sql = """
            WITH used AS (
                UPDATE user_tokens SET used_at = now()
                WHERE token_hash = $1 AND kind = $2 AND used_at IS NULL AND expires_at > now()
                RETURNING user_id
            )
            SELECT u.*, t.status AS tenant_status
            FROM users u JOIN used ON used.user_id = u.id LEFT JOIN tenants t ON t.id = u.tenant_id
            WHERE u.status IN ('invited', 'active')
        """
        record = await self._pool.fetchrow(
            sql,
            token_hash,
            kind,
        )
        return _maybe(_user, record)

    async def insert_session(self, values: Fields, ttl_s: float) -> UserSession:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO sessions (id, token_hash, user_id, ip, user_agent, expires_at) "
                "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
                values["id"],
                values["token_hash"],
                values["user_id"],
                values["ip"],
                values["user_agent"],
                ttl_s,
            )
            record = await conn.fetchrow(_SESSION + " WHERE s.id = $1", values["id"])
        assert record is not None
        return _session(record)

    async def session_by_hash(self, token_hash: str) -> UserSession | None:
        return _maybe(
            _session, await self._pool.fetchrow(_SESSION + " WHERE s.token_hash = $1", token_hash)
        )

    async def session(self, session_id: str) -> UserSession | None:
        record = await self._pool.fetchrow(_SESSION + " WHERE s.id = $1", session_id)
        return _maybe(_session, record)

    async def extend_session(self, session_id: str, ttl_s: float) -> UserSession | None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE sessions SET last_seen_at = now(), "
                "expires_at = now() + make_interval(secs => $2) "
                "WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()",
                session_id,
                ttl_s,
            )
            record = await conn.fetchrow(_SESSION + " WHERE s.id = $1", session_id)
        return _maybe(_session, record)

    async def revoke_session(self, session_id: str) -> None:
        await self._pool.execute(
            "UPDATE sessions SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1",
            session_id,
        )

    async def record_login(self, user_id: str) -> None:
        await self._pool.execute("UPDATE users SET last_login_at = now() WHERE id = $1", user_id)

    # --- login throttle ------------------------------------------------------------

    async def throttle_locks(self, subjects: list[str]) -> float:
        wait = await self._pool.fetchval(
            "SELECT coalesce(max(extract(epoch FROM locked_until - now())), 0) "
            "FROM login_throttle WHERE subject = ANY($1::text[]) AND locked_until > now()",
            subjects,
        )
        return max(0.0, float(wait))

    async def record_login_failure(
        self, subject: str, *, threshold: int, base_s: float, max_s: float, window_s: float
    ) -> float:
        """One failure, atomically: the count restarts after ``window_s`` without failures;
        from ``threshold`` on, the subject is locked for ``base_s * 2^(failures - threshold)``
        seconds, at most ``max_s``."""
        locked = await self._pool.fetchval(
            """
            INSERT INTO login_throttle AS lt (subject, failures, last_failure_at, locked_until)
            VALUES ($1, 1, now(), CASE WHEN $2 <= 1 THEN now() + make_interval(secs => $3) END)
            ON CONFLICT (subject) DO UPDATE SET
                failures = CASE WHEN lt.last_failure_at < now() - make_interval(secs => $5)
                           THEN 1 ELSE lt.failures + 1 END,
                last_failure_at = now(),
                locked_until = CASE
                    WHEN (CASE WHEN lt.last_failure_at < now() - make_interval(secs => $5)
                          THEN 1 ELSE lt.failures + 1 END) >= $2
                    THEN now() + make_interval(secs => least($4::float8, $3::float8 * power(2,
                        (CASE WHEN lt.last_failure_at < now() - make_interval(secs => $5)
                         THEN 1 ELSE lt.failures + 1 END) - $2)))
                    ELSE NULL END
            RETURNING coalesce(extract(epoch FROM locked_until - now()), 0)
            """,
            subject,
            threshold,
            base_s,
            max_s,
            window_s,
        )
        return max(0.0, float(locked))

    async def clear_login_failures(self, subject: str) -> None:
        await self._pool.execute("DELETE FROM login_throttle WHERE subject = $1", subject)

    async def purge_expired(self, *, window_s: float, keep_s: float) -> int:
        removed = 0
        async with self._pool.acquire() as conn, conn.transaction():
            for sql, seconds in (
                (
                    "DELETE FROM login_throttle WHERE last_failure_at < "
                    "now() - make_interval(secs => $1) "
                    "AND (locked_until IS NULL OR locked_until < now())",
                    window_s,
                ),
                (
                    "DELETE FROM sessions WHERE coalesce(revoked_at, expires_at) < "
                    "now() - make_interval(secs => $1)",
                    keep_s,
                ),
                (
                    "DELETE FROM user_tokens WHERE coalesce(used_at, expires_at) < "
                    "now() - make_interval(secs => $1)",
                    keep_s,
                ),
            ):
                status = await conn.execute(sql, seconds)
                removed += int(status.split()[-1])
        return removed

    # --- audit log --------------------------------------------------------------------

    async def record_audit(self, entry: AuditEntry) -> None:
        await self._pool.execute(
            "INSERT INTO audit_log (tenant_id, actor_type, actor_id, action, target_type, "
            "target_id, details, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            entry.tenant_id,
            entry.actor_type,
            entry.actor_id,
            entry.action,
            entry.target_type,
            entry.target_id,
            json.dumps(dict(entry.details), default=str),
            entry.ip,
            (entry.user_agent or "")[:512] or None,
        )

    async def audit_entries(
        self, *, tenant_id: str | None, limit: int, before: int | None, action: str | None
    ) -> list[AuditRecord]:
        """Newest first; ``tenant_id`` None: every tenant's (and the operator's own)."""
        records = await self._pool.fetch(
            "SELECT * FROM audit_log WHERE ($1::text IS NULL OR tenant_id = $1) "
            "AND ($2::bigint IS NULL OR id < $2) AND ($3::text IS NULL OR action = $3) "
            "ORDER BY id DESC LIMIT $4",
            tenant_id,
            before,
            action,
            limit,
        )
        return [_audit(r) for r in records]
