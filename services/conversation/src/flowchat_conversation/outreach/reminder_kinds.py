"""The reminders' vocabulary: kinds, states, categories, and the template a kind uses
outside the 24 h window (a setting: ``FLOWCHAT_CONVERSATION_REMINDER_TEMPLATES``).

Plain values only, so the settings and both packages can use them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from flowchat_conversation.outreach.template_catalog import ParameterMap

ReminderKind = Literal["payment_due", "abandoned_cart", "order_follow_up", "restock", "custom"]
ReminderState = Literal["pending", "fired", "skipped", "cancelled"]
ReminderCategory = Literal["utility", "marketing"]
DEFAULT_CATEGORY: dict[str, ReminderCategory] = {
    "payment_due": "utility",
    "order_follow_up": "utility",
    "abandoned_cart": "marketing",
    "restock": "marketing",
    "custom": "utility",
}


class ReminderTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    language: Annotated[str, StringConstraints(min_length=2, max_length=15)]
    #: Value specs (``{{name}}`` fields allowed), positional list or named mapping.
    parameters: ParameterMap = ParameterMap()
