"""Users, sessions and the audit log: the pure core of identity (no HTTP, no SQL).

- **Users**: operator users (platform staff, no tenant) and tenant users with a role
  (owner, admin, agent, viewer). An admin invites by e-mail: the user row is created
  ``invited`` with a one-time token (shown to the inviter and sent through the
  :class:`~flowchat_tenant.ports.Mailer`); the invitee sets a password with it and is
  ``active``. Admins change roles, disable, delete and force a password reset; each
  of these ends the user's sessions and tokens in the same transaction.
- **Login** checks the argon2id hash and opens a session (opaque token, stored as a
  digest, for the console's cookie) and issues a short-lived signed access token for
  the API; ``refresh`` trades a live session for a new access token; ``logout`` ends
  the session. Every use of an access token reads the session and the user again.
- **Lockout with backoff**: failures are counted per e-mail and per client address
  within ``lockout_window_s``; from the threshold on, each failure locks that subject
  for ``base * 2^(failures - threshold)`` seconds, at most ``lockout_max_s``; while
  locked, every login for it answers 429 with ``Retry-After``, even with the right
  password. A success clears the e-mail's count (never the address's).
- **Audit**: every admin action, with who, what, when and from where; tenant admins
  read their tenant's entries, operators every tenant's (pages of ``{items, next_cursor}``).

Permissions come from the one table in :mod:`flowchat_tenant.permissions`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flowchat_platform.logs import get_logger
from flowchat_platform.pagination import decode_cursor, page_of
from flowchat_tenant import metrics
from flowchat_tenant.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
)
from flowchat_tenant.models import (
    AccessTokenIssued,
    AuditItem,
    AuditPage,
    ChangePassword,
    Invited,
    LoginResult,
    OneTimeTokenIssued,
    OperatorInvite,
    ProfileUpdate,
    ResetIssued,
    SetPassword,
    User,
    UserIdentity,
    UserInvite,
    UserUpdate,
)
from flowchat_tenant.permissions import Principal, authorize, require_operator
from flowchat_tenant.ports import AuditEntry, IdentityStore, Mail, Mailer
from flowchat_tenant.records import Fields, StoredUser, UserSession
from flowchat_tenant.tokens import (
    ONE_TIME_PREFIX,
    SESSION_PREFIX,
    AccessClaims,
    AccessTokens,
    Passwords,
    opaque_token,
    token_digest,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class IdentityPolicy:
    password_min_length: int = 12
    invitation_ttl_s: float = 7 * 86400
    reset_ttl_s: float = 86400
    session_ttl_s: float = 14 * 86400
    lockout_user_threshold: int = 5
    lockout_ip_threshold: int = 20
    lockout_base_s: float = 30.0
    lockout_max_s: float = 3600.0
    lockout_window_s: float = 900.0
    #: where the console takes a one-time token (``{console_url}/accept?token=…``)
    console_url: str = "http://127.0.0.1:8080"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class IdentityService:
    def __init__(
        self,
        store: IdentityStore,
        mailer: Mailer,
        passwords: Passwords,
        tokens: AccessTokens,
        policy: IdentityPolicy | None = None,
    ) -> None:
        self._store = store
        self._mailer = mailer
        self._passwords = passwords
        self._tokens = tokens
        self.policy = policy or IdentityPolicy()

    # --- helpers -------------------------------------------------------------------

    async def _audit(
        self,
        principal: Principal,
        action: str,
        tenant_id: str | None,
        target_id: str | None,
        **details: object,
    ) -> None:
        await self._store.record_audit(
            AuditEntry.of(principal, action, tenant_id, "user", target_id, details)
        )

    def _scope(self, principal: Principal, tenant_id: str | None, action: str) -> None:
        """``tenant_id`` None: the operator's own users (operators only)."""
        if tenant_id is None:
            require_operator(principal)
        else:
            authorize(principal, tenant_id, action)

    async def _user(self, tenant_id: str | None, user_id: str) -> StoredUser:
        user = await self._store.user(tenant_id, user_id)
        if user is None or user.status == "deleted":
            raise NotFound("user", user_id)
        return user

    async def _issue_one_time(
        self, user: StoredUser, kind: str, ttl_s: float
    ) -> OneTimeTokenIssued:
        token = opaque_token(ONE_TIME_PREFIX)
        await self._store.insert_user_token(user.id, token_digest(token), kind, ttl_s)
        page = "accept" if kind == "invitation" else "reset"
        url = f"{self.policy.console_url.rstrip('/')}/{page}?token={token}"
        subject = "Reset your FlowChat password"
        if kind == "invitation":
            subject = "You are invited to FlowChat"
        await self._mailer.send(
            Mail(
                to=user.email,
                subject=subject,
                body=f"Open this link to set your password: {url}",
                data={"kind": kind, "token": token, "url": url, "user_id": user.id},
            )
        )
        return OneTimeTokenIssued(
            token=token,
            kind=kind,
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s),
            url=url,
        )

    async def _check_owner_change(
        self, principal: Principal, target: StoredUser, new_role: str | None, removing: bool
    ) -> None:
        """Owners are managed by owners (and the operator); a tenant keeps one active owner."""
        if target.tenant_id is None:
            return
        if target.role == "owner" or new_role == "owner":
            authorize(principal, target.tenant_id, "users.owners")
        loses_owner = target.role == "owner" and (removing or (new_role not in (None, "owner")))
        if (
            loses_owner
            and target.status == "active"
            and await self._store.active_owners(target.tenant_id) <= 1
        ):
            raise Conflict("a tenant keeps at least one active owner", field="role")

    # --- administration ------------------------------------------------------------

    async def invite(
        self, principal: Principal, tenant_id: str | None, body: UserInvite | OperatorInvite
    ) -> Invited:
        role = body.role if isinstance(body, UserInvite) else "operator"
        self._scope(principal, tenant_id, "users.write")
        if tenant_id is not None and role == "owner":
            authorize(principal, tenant_id, "users.owners")
        user = await self._store.insert_user(
            {
                "id": new_id("usr"),
                "tenant_id": tenant_id,
                "email": body.email,
                "role": role,
                "status": "invited",
                "name": body.name,
            }
        )
        issued = await self._issue_one_time(user, "invitation", self.policy.invitation_ttl_s)
        await self._audit(principal, "user.invite", tenant_id, user.id, role=role)
        log.info("user invited", tenant_id=tenant_id, user_id=user.id, role=role)
        return Invited(user=user.public(), invitation=issued)

    async def list_users(
        self, principal: Principal, tenant_id: str | None, *, limit: int, after: str | None
    ) -> list[User]:
        self._scope(principal, tenant_id, "users.read")
        return [u.public() for u in await self._store.users(tenant_id, limit=limit, after=after)]

    async def get_user(self, principal: Principal, tenant_id: str | None, user_id: str) -> User:
        self._scope(principal, tenant_id, "users.read")
        return (await self._user(tenant_id, user_id)).public()

    async def update_user(
        self, principal: Principal, tenant_id: str | None, user_id: str, body: UserUpdate
    ) -> User:
        self._scope(principal, tenant_id, "users.write")
        target = await self._user(tenant_id, user_id)
        changes: Fields = body.model_dump(exclude_unset=True, exclude_none=True)
        if tenant_id is None and "role" in changes:
            raise InvalidInput("operator users have no tenant role", field="role")
        if "status" in changes and target.status == "invited":
            raise InvalidInput(
                "an invited user becomes active by accepting the invitation", field="status"
            )
        if not changes:
            return target.public()
        await self._check_owner_change(
            principal, target, changes.get("role"), changes.get("status") == "disabled"
        )
        # a new role or a disabled account: tokens issued before say something false now
        end = changes.get("role", target.role) != target.role or changes.get("status") == "disabled"
        updated = await self._store.update_user(user_id, changes, end_sessions=end)
        if updated is None:
            raise NotFound("user", user_id)
        await self._audit(principal, "user.update", tenant_id, user_id, **changes)
        log.info("user updated", tenant_id=tenant_id, user_id=user_id, fields=sorted(changes))
        return updated.public()

    async def delete_user(self, principal: Principal, tenant_id: str | None, user_id: str) -> None:
        self._scope(principal, tenant_id, "users.write")
        target = await self._user(tenant_id, user_id)
        await self._check_owner_change(principal, target, None, True)
        await self._store.update_user(user_id, {"status": "deleted"}, end_sessions=True)
        await self._audit(principal, "user.delete", tenant_id, user_id)
        log.info("user deleted", tenant_id=tenant_id, user_id=user_id)

    async def force_reset(
        self, principal: Principal, tenant_id: str | None, user_id: str
    ) -> ResetIssued:
        """The password stops working, every session and token ends; a reset token is sent."""
        self._scope(principal, tenant_id, "users.write")
        target = await self._user(tenant_id, user_id)
        if target.tenant_id is not None and target.role == "owner":
            authorize(principal, target.tenant_id, "users.owners")
        updated = await self._store.update_user(user_id, {"password_hash": None}, end_sessions=True)
        assert updated is not None
        issued = await self._issue_one_time(updated, "reset", self.policy.reset_ttl_s)
        await self._audit(principal, "user.password_reset", tenant_id, user_id)
        log.info("user password reset forced", tenant_id=tenant_id, user_id=user_id)
        return ResetIssued(user=updated.public(), reset=issued)

    async def audit(
        self,
        principal: Principal,
        tenant_id: str | None,
        *,
        limit: int,
        cursor: str | None,
        action: str | None = None,
        all_tenants: bool = False,
    ) -> AuditPage:
        """A tenant's entries (``audit.read``), or, for operators, every tenant's
        (``all_tenants``) or one's. Newest first; ``next_cursor`` asks for the next page."""
        if all_tenants:
            require_operator(principal)
        else:
            assert tenant_id is not None
            authorize(principal, tenant_id, "audit.read")
        before = decode_cursor(cursor, int)
        rows = await self._store.audit_entries(
            tenant_id=tenant_id,
            limit=limit + 1,
            before=before[0] if before else None,
            action=action,
        )
        items = [AuditItem(**{f: getattr(r, f) for f in AuditItem.model_fields}) for r in rows]
        page, next_cursor = page_of(items, limit, lambda i: (i.id,))
        return AuditPage(items=page, next_cursor=next_cursor)

    async def purge(self, *, keep_s: float = 7 * 86400) -> int:
        """Housekeeping: quiet throttle counters, long-ended sessions and tokens."""
        removed = await self._store.purge_expired(
            window_s=self.policy.lockout_window_s, keep_s=keep_s
        )
        log.info("identity rows purged", removed=removed)
        return removed

    async def record_external(self, entry: AuditEntry) -> None:
        """An admin action of another service (its settings, campaigns, endpoints)."""
        await self._store.record_audit(entry)

    # --- the user's own ----------------------------------------------------------------

    async def set_password(self, body: SetPassword, kind: str) -> User:
        """Accept an invitation (``kind`` invitation) or finish a reset (``reset``)."""
        self._check_password(body.password)
        user = await self._store.use_user_token(token_digest(body.token), kind)
        if user is None:
            raise Unauthenticated("unknown, used or expired token", code=f"invalid_{kind}_token")
        changes: Fields = {"password_hash": await self._passwords.hash(body.password)}
        if user.status == "invited":
            changes["status"] = "active"
        if body.name and not user.name:
            changes["name"] = body.name
        updated = await self._store.update_user(user.id, changes)
        assert updated is not None
        actor = Principal(
            operator=False, tenant_id=user.tenant_id, user_id=user.id, actor_type="user"
        )
        action = "user.invitation_accept" if kind == "invitation" else "user.password_set"
        await self._audit(actor, action, user.tenant_id, user.id)
        return updated.public()

    def _check_password(self, password: str, field: str = "password") -> None:
        if len(password) < self.policy.password_min_length:
            raise InvalidInput(
                f"a password has at least {self.policy.password_min_length} characters",
                field=field,
                code="password_too_short",
            )

    async def me(self, principal: Principal) -> User:
        return (await self._self(principal)).public()

    async def _self(self, principal: Principal) -> StoredUser:
        if principal.user_id is None:
            raise Forbidden("only a signed-in user has a profile (not a key)")
        return await self._user(principal.tenant_id, principal.user_id)

    async def update_me(self, principal: Principal, body: ProfileUpdate) -> User:
        user = await self._self(principal)
        changes: Fields = body.model_dump(exclude_unset=True, exclude={"preferences"})
        if body.preferences is not None:
            changes.update(
                language=body.preferences.language,
                timezone=body.preferences.timezone,
                notifications=body.preferences.notifications.model_dump(),
            )
        if not changes:
            return user.public()
        updated = await self._store.update_user(user.id, changes)
        assert updated is not None
        return updated.public()

    async def change_password(self, principal: Principal, body: ChangePassword) -> None:
        """Needs the current password; other sessions end (this one lives on)."""
        user = await self._self(principal)
        if not await self._passwords.verify(user.password_hash, body.current_password):
            raise Unauthenticated("the current password is wrong", code="invalid_login")
        self._check_password(body.new_password, "new_password")
        await self._store.update_user(
            user.id,
            {"password_hash": await self._passwords.hash(body.new_password)},
            end_sessions=True,
        )
        await self._audit(principal, "user.password_change", user.tenant_id, user.id)

    # --- login, sessions, tokens ---------------------------------------------------------

    async def login(
        self, email: str, password: str, *, ip: str | None, user_agent: str | None
    ) -> LoginResult:
        p = self.policy
        subjects = [f"user:{email.lower()}"] + ([f"ip:{ip}"] if ip else [])
        wait = await self._store.throttle_locks(subjects)
        if wait > 0:
            metrics.LOGINS.labels("locked").inc()
            raise TooManyAttempts(wait)
        user = await self._store.user_by_email(email)
        stored_hash = user.password_hash if user is not None else None
        if not await self._passwords.verify(stored_hash, password):
            await self._store.record_login_failure(
                subjects[0],
                threshold=p.lockout_user_threshold,
                base_s=p.lockout_base_s,
                max_s=p.lockout_max_s,
                window_s=p.lockout_window_s,
            )
            if ip:
                await self._store.record_login_failure(
                    subjects[1],
                    threshold=p.lockout_ip_threshold,
                    base_s=p.lockout_base_s,
                    max_s=p.lockout_max_s,
                    window_s=p.lockout_window_s,
                )
            metrics.LOGINS.labels("failed").inc()
            raise Unauthenticated("wrong e-mail or password", code="invalid_login")
        assert user is not None
        if not user.usable:
            metrics.LOGINS.labels("refused").inc()
            raise Unauthenticated("this account cannot sign in", code="account_unavailable")
        await self._store.clear_login_failures(subjects[0])
        session_token = opaque_token(SESSION_PREFIX)
        session = await self._store.insert_session(
            {
                "id": new_id("ses"),
                "token_hash": token_digest(session_token),
                "user_id": user.id,
                "ip": ip,
                "user_agent": (user_agent or "")[:512] or None,
            },
            p.session_ttl_s,
        )
        await self._store.record_login(user.id)
        metrics.LOGINS.labels("ok").inc()
        access = self._access(session)
        return LoginResult(
            **access.model_dump(),
            session_token=session_token,
            session_expires_at=session.expires_at,
            user=session.user.public(),
        )

    def _access(self, session: UserSession) -> AccessTokenIssued:
        user = session.user
        token, expires_at = self._tokens.issue(
            user_id=user.id,
            tenant_id=user.tenant_id,
            role=user.role,
            session_id=session.id,
            version=user.token_version,
        )
        return AccessTokenIssued(
            access_token=token,
            expires_in=self._tokens.ttl_s,
            expires_at=datetime.fromtimestamp(expires_at, UTC),
        )

    async def _live_session(self, session_token: str) -> UserSession:
        session = None
        if session_token.startswith(SESSION_PREFIX):
            session = await self._store.session_by_hash(token_digest(session_token))
        if session is None or not session.live or not session.user.usable:
            raise Unauthenticated("the session has ended; sign in again", code="session_ended")
        return session

    async def refresh(self, session_token: str) -> AccessTokenIssued:
        """A new access token for a live session (whose idle expiry moves on)."""
        session = await self._live_session(session_token)
        extended = await self._store.extend_session(session.id, self.policy.session_ttl_s)
        if extended is None or not extended.live:
            raise Unauthenticated("the session has ended; sign in again", code="session_ended")
        return self._access(extended)

    async def logout(self, token: str) -> None:
        """End the session of a session token or of an access token (idempotent)."""
        claims = self._tokens.check(token)
        if claims is not None:
            await self._store.revoke_session(claims.session_id)
            return
        if token.startswith(SESSION_PREFIX):
            session = await self._store.session_by_hash(token_digest(token))
            if session is not None:
                await self._store.revoke_session(session.id)
                return
        raise Unauthenticated("unknown session", code="session_ended")

    async def _session_of(self, token: str) -> tuple[UserSession, AccessClaims] | None:
        """The live session behind a valid access token whose user may act now, with the
        token's claims (checked once)."""
        claims = self._tokens.check(token)
        if claims is None:
            return None
        session = await self._store.session(claims.session_id)
        if (
            session is None
            or not session.live
            or session.user.id != claims.user_id
            or not session.user.usable
            or session.user.token_version != claims.token_version
        ):
            return None
        return session, claims

    async def authenticate_user(
        self, token: str, *, ip: str | None, user_agent: str | None
    ) -> Principal | None:
        """The principal of an access token used on the public API (None if dead)."""
        found = await self._session_of(token)
        if found is None:
            return None
        session, _ = found
        user = session.user
        return Principal(
            operator=user.role == "operator",
            tenant_id=user.tenant_id,
            user_id=user.id,
            role=user.role,  # type: ignore[arg-type]
            ip=ip,
            user_agent=user_agent,
            actor_type="user",
            session_id=session.id,
        )

    async def resolve(self, token: str) -> UserIdentity | None:
        """For the other services: who is behind an access token (None if dead)."""
        found = await self._session_of(token)
        if found is None:
            return None
        session, claims = found
        return UserIdentity(
            user_id=session.user.id,
            tenant_id=session.user.tenant_id,
            role=session.user.role,
            session_id=session.id,
            expires_at=datetime.fromtimestamp(claims.expires_at, UTC),
        )
