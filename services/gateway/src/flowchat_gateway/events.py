"""Event models the gateway publishes that ``flowchat_contracts`` does not define yet.

:class:`BusinessEvent` carries Meta's account-level notifications (template status
and quality, phone number quality, marketing opt-outs, account updates) to
``flowchat.events`` with routing key ``<tenant>.<account>.<field>``. It follows the
contracts' conventions (``schema_version``, constant ``kind``, tenant and account,
correlation id; unknown fields ignored) so it can move to ``flowchat_contracts``
unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from flowchat_contracts import SCHEMA_VERSION, MarketingPreference, Provider, new_id

#: Meta webhook fields published as business events (anything else is ignored).
BusinessField = Literal[
    "message_template_status_update",
    "message_template_quality_update",
    "template_category_update",
    "phone_number_quality_update",
    "phone_number_name_update",
    "account_update",
    "user_marketing_preferences",
    # Not a Meta field any more (BSUID changes come as ``user_changed_user_id`` system
    # messages), but some providers still relay it: passed on as sent.
    "user_id_update",
]
BUSINESS_FIELDS: frozenset[str] = frozenset(get_args(BusinessField))


class BusinessEvent(BaseModel):
    """An account-level notification from Meta, as sent (``data``) plus its routing facts."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["business_event"] = "business_event"
    event_id: str = Field(default_factory=new_id, min_length=1, max_length=128)
    tenant_id: str = Field(min_length=1, max_length=128)
    account_id: str = Field(min_length=1, max_length=128)
    correlation_id: str = Field(default_factory=new_id, min_length=1, max_length=128)
    provider: Provider = "meta"
    #: Meta's webhook field, e.g. ``message_template_status_update``.
    field: BusinessField
    #: Meta's ``value.event`` when there is one (APPROVED, REJECTED, FLAGGED, …).
    event: str | None = None
    waba_id: str | None = None
    phone_number_id: str | None = None
    occurred_at: datetime
    #: The change's ``value`` exactly as Meta sent it.
    data: dict[str, Any] = Field(default_factory=dict)
    #: ``user_marketing_preferences`` (Meta's ``user_preferences``): each item with its
    #: customer as an identity (BSUID, phone, or both), for consumers keyed by identity.
    marketing_preferences: list[MarketingPreference] = Field(default_factory=list)
