"""The tenant service's business logic: tenants, accounts, secrets, API keys, health.

Knows nothing of HTTP, SQL or the Graph API's transport: the routes and the CLI
call it with a :class:`Principal` and validated models; it talks to a
:class:`~flowchat_tenant.ports.TenantStore`, a :class:`~flowchat_tenant.crypto.SecretBox`
and a :class:`~flowchat_tenant.ports.NumberProvider`, all passed in, and works on
plain values (:mod:`flowchat_tenant.records`), never on database rows.

Authorization: one table (:mod:`flowchat_tenant.permissions`): the operator may do
everything; a tenant user may do what its role allows in its own tenant, and a
tenant API key with the ``admin`` scope acts as an ``admin``. Another tenant's
resources answer exactly as unknown ones do (404). Every change is written to the
audit log (``audit``, an :class:`~flowchat_tenant.ports.AuditLog`).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.logs import get_logger
from flowchat_tenant import metrics, validation
from flowchat_tenant.crypto import InvalidToken, SecretBox, digest, digests_equal
from flowchat_tenant.errors import (
    InvalidCredentials,
    InvalidInput,
    NotFound,
    ProviderError,
    SecretUnavailable,
)
from flowchat_tenant.models import (
    Account,
    AccountUpdate,
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyVerified,
    BusinessProfileUpdate,
    MetaAccountCreate,
    Tenant,
    TenantCreate,
    TenantUpdate,
    TwilioAccountCreate,
)
from flowchat_tenant.permissions import Principal, authorize, require_operator
from flowchat_tenant.ports import AuditEntry, AuditLog, NumberProvider, PhoneNumberInfo, TenantStore
from flowchat_tenant.records import Fields, NumberRef, StoredAccount

log = get_logger(__name__)

DEFAULT_THROUGHPUT_MPS = 80
API_KEY_PREFIX = "fc_"
#: ``last_used_at`` is written at most this often per key.
KEY_TOUCH_INTERVAL_S = 60.0


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def parse_api_key(key: str) -> str | None:
    """The key id inside ``fc_<key_id>_<secret>``, or None when the shape is wrong."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(API_KEY_PREFIX) :].rpartition("_")
    if not sep or not key_id.startswith("key_") or len(secret) < 32:
        return None
    return key_id


def health_columns(info: PhoneNumberInfo | None, error: str | None) -> Fields:
    return {
        "verified_name": info.verified_name if info else None,
        "quality_rating": info.quality_rating if info else None,
        "throughput_level": info.throughput_level if info else None,
        "messaging_limit_tier": info.messaging_limit_tier if info else None,
        "health_error": error,
    }


def check_display_number(claimed: str, info: PhoneNumberInfo) -> None:
    """The number the provider reports must be the one the caller registers."""
    if not info.display_phone_number:
        return
    try:
        reported = validation.e164(info.display_phone_number)
    except ValueError:
        return
    if reported != claimed:
        raise InvalidInput(
            f"the provider reports {reported} for this phone number id, not {claimed}",
            field="display_phone_number",
            code="phone_number_mismatch",
        )


class TenantService:
    def __init__(
        self,
        repository: TenantStore,
        box: SecretBox,
        provider: NumberProvider,
        *,
        validate_numbers: bool = True,
        audit: AuditLog | None = None,
    ) -> None:
        self._audit_log = audit
        self._repo = repository
        self._box = box
        self._provider = provider
        self._validate_numbers = validate_numbers

    def _open(self, account_id: str, secret: str, ciphertext: bytes | None) -> str | None:
        """Decrypt one secret of an account (``secret`` names it in the log)."""
        try:
            return self._box.decrypt(ciphertext)
        except InvalidToken:
            log.error("secret does not decrypt", account_id=account_id, column=f"{secret}_enc")
            raise SecretUnavailable(account_id) from None

    def _token(self, number: NumberRef) -> str:
        token = self._open(number.account_id, "access_token", number.access_token_enc)
        if token is None:
            raise SecretUnavailable(number.account_id)
        return token

    # --- authorization ---------------------------------------------------------

    async def authenticate_key(self, key: str) -> Principal | None:
        """The principal of a tenant API key used on the public API (None if unknown)."""
        info = await self.verify_api_key(key)
        if info is None:
            return None
        return Principal(
            operator=False,
            tenant_id=info.tenant_id,
            key_id=info.key_id,
            scopes=tuple(info.scopes),
            actor_type="api_key",
        )

    @staticmethod
    def authorize(principal: Principal, tenant_id: str, action: str) -> None:
        """The one check (:mod:`flowchat_tenant.permissions`): 404 for another tenant, 403."""
        authorize(principal, tenant_id, action)

    @staticmethod
    def require_operator(principal: Principal) -> None:
        require_operator(principal)

    async def _audit(
        self,
        principal: Principal,
        action: str,
        tenant_id: str | None,
        target_type: str,
        target_id: str | None,
        **details: object,
    ) -> None:
        """One entry of the audit log: who, what, when (the database's clock), from where."""
        if self._audit_log is None:
            return
        await self._audit_log.record_audit(
            AuditEntry.of(principal, action, tenant_id, target_type, target_id, details)
        )

    # --- tenants -----------------------------------------------------------------

    async def create_tenant(self, principal: Principal, body: TenantCreate) -> Tenant:
        self.require_operator(principal)
        tenant = await self._repo.insert_tenant(
            {
                "id": new_id("tnt"),
                "name": body.name,
                "business_name": body.business_name or body.name,
                "timezone": body.timezone,
                "locale": body.locale,
                "currency": body.currency,
                "tax_rate": body.tax_rate,
            }
        )
        log.info("tenant created", tenant_id=tenant.tenant_id)
        await self._audit(principal, "tenant.create", tenant.tenant_id, "tenant", tenant.tenant_id)
        return tenant

    async def list_tenants(
        self, principal: Principal, *, limit: int = 100, after: str | None = None
    ) -> list[Tenant]:
        if not principal.operator:
            assert principal.tenant_id is not None
            return [await self.get_tenant(principal, principal.tenant_id)]
        return await self._repo.tenants(limit=limit, after=after)

    async def get_tenant(self, principal: Principal, tenant_id: str) -> Tenant:
        self.authorize(principal, tenant_id, "tenant.read")
        return await self._tenant(tenant_id)

    async def update_tenant(
        self, principal: Principal, tenant_id: str, body: TenantUpdate
    ) -> Tenant:
        self.authorize(principal, tenant_id, "tenant.update")
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        if "status" in changes:
            self.require_operator(principal)
        if not changes:
            return await self._tenant(tenant_id)
        tenant = await self._repo.update_tenant(tenant_id, changes)
        if tenant is None:
            raise NotFound("tenant", tenant_id)
        log.info("tenant updated", tenant_id=tenant_id, fields=sorted(changes))
        await self._audit(
            principal, "tenant.update", tenant_id, "tenant", tenant_id, fields=sorted(changes)
        )
        return tenant

    async def _tenant(self, tenant_id: str) -> Tenant:
        tenant = await self._repo.tenant(tenant_id)
        if tenant is None:
            raise NotFound("tenant", tenant_id)
        return tenant

    # --- accounts ------------------------------------------------------------------

    async def create_account(
        self,
        principal: Principal,
        tenant_id: str,
        body: MetaAccountCreate | TwilioAccountCreate,
    ) -> Account:
        self.authorize(principal, tenant_id, "numbers.write")
        await self._tenant(tenant_id)
        values: Fields = {
            "id": new_id("acc"),
            "tenant_id": tenant_id,
            "provider": body.provider,
            "tier": body.tier,
            "throughput_mps": body.throughput_mps or DEFAULT_THROUGHPUT_MPS,
            "throughput_pinned": body.throughput_mps is not None,
        }
        if isinstance(body, MetaAccountCreate):
            info = await self._validated_number(
                body.phone_number_id, body.access_token, body.display_phone_number
            )
            if info is not None:
                values.update(health_columns(info, None), health_checked_at=datetime.now(UTC))
                if body.throughput_mps is None and info.throughput_mps:
                    values["throughput_mps"] = info.throughput_mps
            values.update(
                phone_number_id=body.phone_number_id,
                waba_id=body.waba_id,
                display_phone_number=body.display_phone_number,
                app_id=body.app_id,
                app_secret_enc=self._box.encrypt(body.app_secret),
                access_token_enc=self._box.encrypt(body.access_token),
                verify_token_enc=self._box.encrypt(body.verify_token),
                verify_token_hash=digest(body.verify_token),
            )
        else:
            values.update(
                twilio_account_sid=body.twilio_account_sid,
                twilio_auth_token_enc=self._box.encrypt(body.twilio_auth_token),
                twilio_number=body.twilio_number,
                display_phone_number=body.twilio_number,
            )
        account = await self._repo.insert_account(values)
        log.info(
            "account registered", tenant_id=tenant_id, account_id=account.id, provider=body.provider
        )
        await self._audit(
            principal, "number.create", tenant_id, "account", account.id, provider=body.provider
        )
        return account.public()

    async def _validated_number(
        self, phone_number_id: str, access_token: str, display_phone_number: str | None
    ) -> PhoneNumberInfo | None:
        """Read the number from the provider with the token (proves both are right)."""
        if not self._validate_numbers:
            return None
        try:
            info = await self._provider.phone_number(phone_number_id, access_token)
        except InvalidCredentials:
            metrics.PROVIDER_CALLS.labels("phone_number", "invalid_credentials").inc()
            raise
        except (InvalidInput, ProviderError):
            metrics.PROVIDER_CALLS.labels("phone_number", "error").inc()
            raise
        metrics.PROVIDER_CALLS.labels("phone_number", "ok").inc()
        if display_phone_number is not None:
            check_display_number(display_phone_number, info)
        return info

    async def list_accounts(
        self,
        principal: Principal,
        tenant_id: str,
        *,
        limit: int | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[Account]:
        """The tenant's numbers, oldest first; ``after`` a ``(created_at, id)`` keyset."""
        self.authorize(principal, tenant_id, "numbers.read")
        await self._tenant(tenant_id)
        rows = await self._repo.accounts(tenant_id, limit=limit, after=after)
        return [a.public() for a in rows]

    async def get_account(self, principal: Principal, tenant_id: str, account_id: str) -> Account:
        self.authorize(principal, tenant_id, "numbers.read")
        return (await self._account(tenant_id, account_id)).public()

    async def _account(self, tenant_id: str, account_id: str) -> StoredAccount:
        account = await self._repo.account(tenant_id, account_id)
        if account is None:
            raise NotFound("account", account_id)
        return account

    async def update_account(
        self, principal: Principal, tenant_id: str, account_id: str, body: AccountUpdate
    ) -> Account:
        self.authorize(principal, tenant_id, "numbers.write")
        current = await self._account(tenant_id, account_id)
        fields = body.model_dump(exclude_unset=True, exclude_none=True)
        self._check_applicable(current.provider, fields)
        if not fields:
            return current.public()
        changes = self._plain_changes(fields)
        if current.provider == "meta" and (
            "access_token" in fields or "display_phone_number" in fields
        ):
            assert current.phone_number_id is not None  # a Meta account always has one
            token = fields.get("access_token") or self._token(current.ref)
            info = await self._validated_number(
                current.phone_number_id,
                token,
                fields.get("display_phone_number", current.display_phone_number),
            )
            if info is not None:
                changes.update(health_columns(info, None), health_checked_at=datetime.now(UTC))
                if (
                    info.throughput_mps
                    and not current.throughput_pinned
                    and ("throughput_mps" not in fields)
                ):
                    changes["throughput_mps"] = info.throughput_mps
        account = await self._repo.update_account(tenant_id, account_id, changes)
        if account is None:
            raise NotFound("account", account_id)
        log.info(
            "account updated",
            tenant_id=tenant_id,
            account_id=account_id,
            fields=sorted(fields),
            version=account.version,
        )
        await self._audit(
            principal, "number.update", tenant_id, "account", account_id, fields=sorted(fields)
        )
        return account.public()

    @staticmethod
    def _check_applicable(provider: str, fields: dict[str, Any]) -> None:
        meta_only = {"waba_id", "app_id", "app_secret", "verify_token", "access_token"}
        twilio_only = {"twilio_account_sid", "twilio_auth_token", "twilio_number"}
        if provider == "twilio":
            meta_only.add("display_phone_number")  # a Twilio account's number is twilio_number
        wrong = (twilio_only if provider == "meta" else meta_only) & set(fields)
        if wrong:
            name = sorted(wrong)[0]
            raise InvalidInput(
                f"{name} does not apply to a {provider} account", field=name, code="not_applicable"
            )

    def _plain_changes(self, fields: dict[str, Any]) -> Fields:
        """Stored-field changes for the given fields, secrets encrypted (no provider call)."""
        changes: Fields = {
            name: fields[name]
            for name in ("status", "waba_id", "display_phone_number", "app_id", "tier")
            if name in fields
        }
        if "twilio_account_sid" in fields:
            changes["twilio_account_sid"] = fields["twilio_account_sid"]
        if "twilio_number" in fields:
            changes["twilio_number"] = fields["twilio_number"]
            changes["display_phone_number"] = fields["twilio_number"]
        if "throughput_mps" in fields:
            changes["throughput_mps"] = fields["throughput_mps"]
            changes["throughput_pinned"] = True
        for secret in ("app_secret", "access_token", "verify_token", "twilio_auth_token"):
            if secret in fields:
                changes[f"{secret}_enc"] = self._box.encrypt(fields[secret])
        if "verify_token" in fields:
            changes["verify_token_hash"] = digest(fields["verify_token"])
        return changes

    async def delete_account(self, principal: Principal, tenant_id: str, account_id: str) -> None:
        self.authorize(principal, tenant_id, "numbers.write")
        if not await self._repo.delete_account(tenant_id, account_id):
            raise NotFound("account", account_id)
        log.info("account deleted", tenant_id=tenant_id, account_id=account_id)
        await self._audit(principal, "number.delete", tenant_id, "account", account_id)

    # --- number health and business profile --------------------------------------

    async def refresh_account_health(
        self, principal: Principal, tenant_id: str, account_id: str
    ) -> Account:
        self.authorize(principal, tenant_id, "numbers.write")
        account = await self._meta_account(tenant_id, account_id)
        return (await self._refresh(account.ref)).public()

    async def refresh_all_health(self, *, batch: int = 100) -> int:
        """Re-read every active Meta number's health; returns how many were read."""
        after: str | None = None
        count = 0
        while True:
            numbers = await self._repo.meta_accounts_for_health(after=after, limit=batch)
            if not numbers:
                return count
            for number in numbers:
                try:
                    await self._refresh(number)
                except (NotFound, SecretUnavailable) as exc:  # deleted meanwhile, or lost key
                    log.warning(
                        "number health skipped", account_id=number.account_id, error=exc.message
                    )
                    continue
                count += 1
            after = numbers[-1].account_id

    async def _refresh(self, number: NumberRef) -> StoredAccount:
        token = self._token(number)
        assert number.phone_number_id is not None  # a Meta account always has one
        info: PhoneNumberInfo | None = None
        error: str | None = None
        try:
            info = await self._provider.phone_number(number.phone_number_id, token)
            outcome = "ok"
        except InvalidCredentials as exc:
            error, outcome = f"invalid_credentials: {exc.message}", "invalid_credentials"
        except (InvalidInput, ProviderError) as exc:
            error, outcome = f"{exc.code}: {exc.message}", "error"
        metrics.HEALTH_CHECKS.labels(outcome).inc()
        labels = (number.tenant_id, number.account_id)
        metrics.NUMBER_TOKEN_VALID.labels(*labels).set(outcome != "invalid_credentials")
        if info is not None:
            score = metrics.QUALITY_SCORE.get(info.quality_rating or "", 0)
            metrics.NUMBER_QUALITY.labels(*labels).set(score)
        if info is None:
            # Keep the last good reading; only record the error.
            updated = await self._repo.record_health_error(number.account_id, error or "unknown")
        else:
            updated = await self._repo.record_health(
                number.account_id, health_columns(info, None), throughput_mps=info.throughput_mps
            )
        if error:
            log.warning(
                "number health check failed",
                tenant_id=number.tenant_id,
                account_id=number.account_id,
                error=error,
            )
        if updated is None:
            raise NotFound("account", number.account_id)
        return updated

    async def business_profile(
        self, principal: Principal, tenant_id: str, account_id: str
    ) -> dict[str, Any]:
        self.authorize(principal, tenant_id, "numbers.read")
        number = (await self._meta_account(tenant_id, account_id)).ref
        token = self._token(number)
        assert number.phone_number_id is not None
        return await self._provider.business_profile(number.phone_number_id, token)

    async def update_business_profile(
        self, principal: Principal, tenant_id: str, account_id: str, body: BusinessProfileUpdate
    ) -> dict[str, Any]:
        self.authorize(principal, tenant_id, "numbers.write")
        number = (await self._meta_account(tenant_id, account_id)).ref
        token = self._token(number)
        assert number.phone_number_id is not None
        profile = body.model_dump(exclude_none=True)
        result = await self._provider.update_business_profile(
            number.phone_number_id, token, profile
        )
        log.info(
            "business profile updated",
            tenant_id=tenant_id,
            account_id=account_id,
            fields=sorted(profile),
        )
        await self._audit(
            principal,
            "number.business_profile.update",
            tenant_id,
            "account",
            account_id,
            fields=sorted(profile),
        )
        return result

    async def _meta_account(self, tenant_id: str, account_id: str) -> StoredAccount:
        account = await self._account(tenant_id, account_id)
        if account.provider != "meta":
            raise InvalidInput(
                "only Meta Cloud API numbers have a health reading and a business profile",
                field="provider",
                code="not_applicable",
            )
        return account

    # --- API keys --------------------------------------------------------------------

    async def create_api_key(
        self, principal: Principal, tenant_id: str, body: ApiKeyCreate
    ) -> ApiKeyCreated:
        self.authorize(principal, tenant_id, "keys.write")
        await self._tenant(tenant_id)
        key_id = new_id("key")
        key = f"{API_KEY_PREFIX}{key_id}_{secrets.token_hex(32)}"
        stored = await self._repo.insert_api_key(
            {
                "id": key_id,
                "tenant_id": tenant_id,
                "name": body.name,
                "scopes": list(body.scopes),
                "key_hash": digest(key),
            }
        )
        log.info("api key created", tenant_id=tenant_id, key_id=key_id, scopes=body.scopes)
        await self._audit(
            principal, "api_key.create", tenant_id, "api_key", key_id, scopes=list(body.scopes)
        )
        return ApiKeyCreated(**stored.public().model_dump(), key=key)

    async def list_api_keys(
        self,
        principal: Principal,
        tenant_id: str,
        *,
        limit: int | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[ApiKey]:
        """The tenant's keys, oldest first; ``after`` a ``(created_at, id)`` keyset."""
        self.authorize(principal, tenant_id, "keys.read")
        await self._tenant(tenant_id)
        rows = await self._repo.api_keys(tenant_id, limit=limit, after=after)
        return [k.public() for k in rows]

    async def get_api_key(self, principal: Principal, tenant_id: str, key_id: str) -> ApiKey:
        self.authorize(principal, tenant_id, "keys.read")
        stored = await self._repo.api_key(tenant_id, key_id)
        if stored is None:
            raise NotFound("api key", key_id)
        return stored.public()

    async def revoke_api_key(self, principal: Principal, tenant_id: str, key_id: str) -> ApiKey:
        self.authorize(principal, tenant_id, "keys.write")
        stored = await self._repo.revoke_api_key(tenant_id, key_id)
        if stored is None:
            raise NotFound("api key", key_id)
        log.info("api key revoked", tenant_id=tenant_id, key_id=key_id)
        await self._audit(principal, "api_key.revoke", tenant_id, "api_key", key_id)
        return stored.public()

    async def verify_api_key(self, key: str) -> ApiKeyVerified | None:
        """The tenant and scopes of a live key (recording its use), else None."""
        key_id = parse_api_key(key)
        stored = await self._repo.api_key_for_verify(key_id) if key_id else None
        if stored is None or not digests_equal(stored.key_hash, digest(key)):
            metrics.API_KEY_CHECKS.labels("unknown").inc()
            return None
        if stored.revoked_at is not None:
            metrics.API_KEY_CHECKS.labels("revoked").inc()
            return None
        await self._repo.touch_api_key(stored.id, min_interval_s=KEY_TOUCH_INTERVAL_S)
        metrics.API_KEY_CHECKS.labels("valid").inc()
        assert stored.tenant_status is not None  # the key check joins the tenant
        return ApiKeyVerified(
            key_id=stored.id,
            tenant_id=stored.tenant_id,
            scopes=list(stored.scopes),
            tenant_status=stored.tenant_status,
        )

    # --- internal lookups ------------------------------------------------------------

    async def credentials_by_id(self, account_id: str) -> AccountCredentials:
        return self._credentials(await self._repo.account_by_id(account_id), account_id)

    async def credentials_by_phone_number_id(self, phone_number_id: str) -> AccountCredentials:
        account = await self._repo.account_by_phone_number_id(phone_number_id)
        return self._credentials(account, phone_number_id)

    async def credentials_by_ids(self, account_ids: list[str]) -> list[AccountCredentials]:
        """The accounts among ``account_ids`` that exist, in one query (unknown ids are
        left out: the caller treats them as not found)."""
        unique = list(dict.fromkeys(account_ids))
        accounts = await self._repo.accounts_by_ids(unique) if unique else []
        return [self._credentials(account, account.id) for account in accounts]

    async def credentials_by_waba(self, waba_id: str) -> list[AccountCredentials]:
        """Every account of a WABA, oldest first; :class:`NotFound` when there is none."""
        accounts = await self._repo.accounts_by_waba(waba_id)
        if not accounts:
            raise NotFound("waba", waba_id)
        return [self._credentials(account, waba_id) for account in accounts]

    async def credentials_by_twilio_number(self, number: str) -> AccountCredentials:
        try:
            normalized = validation.e164(number)
        except ValueError:
            raise NotFound("account", number) from None
        return self._credentials(await self._repo.account_by_twilio_number(normalized), number)

    def _credentials(self, account: StoredAccount | None, identifier: str) -> AccountCredentials:
        if account is None:
            raise NotFound("account", identifier)
        assert account.tenant_status is not None  # the internal lookups join the tenant

        def secret(name: str) -> str | None:
            return self._open(account.id, name, account.secret(name))

        return AccountCredentials(
            account_id=account.id,
            tenant_id=account.tenant_id,
            tenant_status=account.tenant_status,
            status=account.status,
            provider=account.provider,
            phone_number_id=account.phone_number_id,
            waba_id=account.waba_id,
            display_phone_number=account.display_phone_number,
            tier=account.tier,
            throughput_mps=account.throughput_mps,
            app_secret=secret("app_secret"),
            access_token=secret("access_token"),
            twilio_account_sid=account.twilio_account_sid,
            twilio_auth_token=secret("twilio_auth_token"),
            twilio_number=account.twilio_number,
            version=account.version,
        )

    async def verify_token_known(self, token: str) -> bool:
        return await self._repo.verify_token_known(digest(token))

    async def tenant_internal(self, tenant_id: str) -> Tenant:
        return await self._tenant(tenant_id)

    # --- key rotation ------------------------------------------------------------------

    async def rotate_keys(self, *, batch_size: int = 200) -> tuple[int, int]:
        """Re-encrypt every secret under the newest key, one transaction per batch.

        Safe to interrupt and re-run: rows not yet rotated still decrypt with an
        older key. Returns (accounts, secrets) re-encrypted.
        """
        after: str | None = None
        accounts = secrets_done = 0
        while True:
            last, rows, done = await self._repo.rotate_batch(
                after=after, limit=batch_size, rotate=self._box.rotate
            )
            if last is None:
                break
            accounts += rows
            secrets_done += done
            after = last
        metrics.SECRETS_ROTATED.inc(secrets_done)
        log.info("secrets re-encrypted", accounts=accounts, rotated=secrets_done)
        return accounts, secrets_done
