"""Twilio's error codes for WhatsApp, with a title each: the one table FlowChat reads.

The gateway names the reason of a failed or undelivered status callback from it when
Twilio sends only ``ErrorCode`` (its ``ErrorMessage`` / ``ChannelStatusMessage`` are
optional); the sender's fates name the same codes. Titles follow Twilio's error
dictionary (twilio.com/docs/api/errors) and its WhatsApp error map
(twilio.com/docs/whatsapp/tutorial/error-codes). Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["TITLES", "title"]

TITLES: Mapping[int, str] = MappingProxyType(
    {
        20003: "Authentication failed",
        20429: "Too many requests",
        21211: "Invalid 'To' phone number",
        21408: "Permission to send to this region is not enabled",
        21610: "The recipient replied STOP: messages to it are blocked",
        21614: "'To' number is not a valid mobile number",
        30001: "Queue overflow",
        30002: "Account suspended",
        30003: "Unreachable destination handset",
        30004: "Message blocked",
        30005: "Unknown destination handset",
        30006: "Landline or unreachable carrier",
        30007: "Message filtered (carrier violation)",
        30008: "Unknown error",
        30009: "Missing segment",
        30010: "Message price exceeds max price",
        63001: "Channel could not authenticate the request",
        63003: "Channel could not find the destination address",
        63005: "Channel did not accept the content",
        63007: "Channel could not find the From address",
        63013: "Channel policy violation",
        63016: "Outside the 24-hour window: send an approved template instead",
        63018: "Rate limit exceeded for this WhatsApp sender",
        63019: "Media failed to download",
        63020: "The business has not accepted the WhatsApp invitation",
        63021: "Channel invalid content",
        63024: "Invalid message recipient",
        63025: "Media already exists",
        63027: "Template does not exist for this language and locale",
        63028: "Template parameter count does not match",
        63030: "Unsupported parameter for this message type",
        63032: "The user's number is part of an experiment",
        63049: "Meta chose not to deliver this marketing message",
    }
)


def title(code: int) -> str:
    """Twilio's title for ``code``; a generic one for codes not in the table."""
    return TITLES.get(code) or f"Twilio error {code}"
