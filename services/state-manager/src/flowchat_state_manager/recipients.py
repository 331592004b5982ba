"""Recipients in FlowChat's one phone form: the WhatsApp id (E.164 digits, no ``+``).

The gateway's send API used to pass ``+E164`` through to the sender, so records
written before it changed (migration ``0002``) and commands still queued then carry
a ``+``. A stored recipient is the command's ``to`` without a leading ``+``; a lookup
by recipient accepts any form a person types (``+1 415-555-0100``,
``whatsapp:+14155550100``, digits) and searches for its WhatsApp id. A recipient that
is not a phone number (a business-scoped user id, BSUID) is kept as given.

A status may name the customer by both ids (:func:`alias_for`): the one that is not the
recipient is recorded as the message's ``recipient_alias``, and a lookup matches either.
"""

from __future__ import annotations

from flowchat_contracts import is_bsuid
from flowchat_platform.phones import InvalidPhoneNumber, to_wa_id


def stored_recipient(to: str) -> str:
    """The form a recipient is stored in (cheap: the sender's ``to`` is a WhatsApp id,
    or an older command's ``+E164``)."""
    return to.removeprefix("+")


def recipient_for_lookup(raw: str) -> str:
    """What to search the stored recipients for, from a recipient in any form."""
    try:
        return to_wa_id(raw)
    except InvalidPhoneNumber:
        return stored_recipient(raw.strip())


def alias_for(recipient: str | None, wa_id: str | None, user_id: str | None) -> str | None:
    """The customer's id that is not ``recipient`` (a BSUID for a phone recipient, the
    phone number for a BSUID recipient); None when the status named no other."""
    phone = wa_id.removeprefix("+") if wa_id else None
    first, second = (phone, user_id) if recipient and is_bsuid(recipient) else (user_id, phone)
    for candidate in (first, second):
        if candidate and candidate != recipient:
            return candidate
    return None
