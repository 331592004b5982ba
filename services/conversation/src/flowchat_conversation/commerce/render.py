"""The bot's replies per channel, and a typed answer read back as a choice (no I/O).

The bot speaks in channel-neutral replies (:mod:`flowchat_contracts` contents: a text,
a list of choices, reply buttons, a document). Each channel shows them as well as it
can (:func:`for_channel`):

* the **Cloud API** (``meta``) sends lists and buttons as native interactive messages;
* **Twilio** has no interactive messages on this path (the sender refuses them,
  code -14), so a list or a set of buttons becomes one text with a numbered menu::

      Your order: …
      1. Confirm
      2. Edit
      3. Cancel
      Reply with a number or a word from the list.

The options offered last are remembered in the session (:func:`menu_of`), and a typed
answer is read back as the option it names (:func:`resolve`): its number (``2``,
``2.``, ``#2``), its label (any case, accents ignored) or a close misspelling of it
(rapidfuzz, ``confrim`` → Confirm). This works on every channel: a Cloud API customer
who types "confirm" instead of tapping is understood too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Literal

from rapidfuzz import fuzz, process

from flowchat_contracts import (
    ButtonsContent,
    CtaUrlContent,
    ListContent,
    OutboundContent,
    TextContent,
)

#: The provider of the conversation's number (``InboundMessage.provider``).
Channel = Literal["meta", "twilio"]

#: A typed label this close (0-100, rapidfuzz ``ratio`` on normalized text) to one
#: option, and clearly closer than to any other, picks it.
MATCH_SCORE = 80.0
CLEAR_MARGIN = 6.0
#: Twilio's limit for a WhatsApp message body.
TWILIO_BODY = 1600

#: ``(reply id, label)`` of each option offered, in the order shown (numbered from 1).
Menu = list[tuple[str, str]]

_NUMBER = re.compile(r"^\s*(?:#|no\.?|n[º°])?\s*(\d{1,2})\s*[.)\-:]?\s*$", re.IGNORECASE)
_DEFAULT_PROMPT = "Reply with a number or a word from the list."


def interactive(channel: str) -> bool:
    """Whether the channel shows native lists and reply buttons."""
    return channel == "meta"


def menu_of(content: OutboundContent) -> Menu | None:
    """The options a reply offers (None: it offers none)."""
    if isinstance(content, ButtonsContent):
        return [(b.id, b.title) for b in content.buttons]
    if isinstance(content, ListContent):
        return [(row.id, row.title) for section in content.sections for row in section.rows]
    return None


def for_channel(
    content: OutboundContent, channel: str, *, prompt: str = _DEFAULT_PROMPT
) -> OutboundContent:
    """``content`` as the channel can show it (lists and buttons as numbered text, a
    CTA-URL button as its link in the text, where there are no interactive messages)."""
    if interactive(channel):
        return content
    if isinstance(content, ButtonsContent):
        lines = [f"{n}. {b.title}" for n, b in enumerate(content.buttons, start=1)]
        return _text(content.body, lines, prompt)
    if isinstance(content, ListContent):
        lines = []
        n = 0
        for section in content.sections:
            if section.title and len(content.sections) > 1:
                lines.append(f"*{section.title}*")
            for row in section.rows:
                n += 1
                extra = f" — {row.description}" if row.description else ""
                lines.append(f"{n}. {row.title}{extra}")
        return _text(content.body, lines, prompt)
    if isinstance(content, CtaUrlContent):  # a link button: the link in the text
        parts = [content.header, content.body, f"{content.display_text}: {content.url}"]
        return TextContent(body="\n\n".join(p for p in parts if p)[:TWILIO_BODY])
    return content


def _text(body: str, lines: list[str], prompt: str) -> TextContent:
    menu = "\n".join(lines)
    tail = f"\n\n{menu}\n\n{prompt}"
    room = TWILIO_BODY - len(tail)
    if len(body) > room:
        body = body[: max(room - 1, 0)] + "…"
    return TextContent(body=(body + tail).strip())


def normalize(text: str) -> str:
    """Case, accents, punctuation and spacing ignored."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.findall(r"\w+", plain))


def resolve(text: str, menu: Sequence[tuple[str, str]]) -> str | None:
    """The id of the option ``text`` names: its number, its label or a close
    misspelling of the label; None when it names none (or two equally well)."""
    if not menu:
        return None
    m = _NUMBER.match(text)
    if m is not None:
        n = int(m.group(1))
        return menu[n - 1][0] if 1 <= n <= len(menu) else None
    typed = normalize(text)
    if not typed:
        return None
    labels = {i: normalize(label) for i, (_, label) in enumerate(menu)}
    exact = [i for i, label in labels.items() if label == typed]
    if len(exact) == 1:
        return menu[exact[0]][0]
    # a typed label that starts a longer one ("river sand" → "River sand 25kg")
    prefix = [i for i, label in labels.items() if label.startswith(typed + " ")]
    if len(prefix) == 1 and len(typed) >= 3:
        return menu[prefix[0]][0]
    hits = process.extract(typed, labels, scorer=fuzz.ratio, limit=2)
    if not hits or hits[0][1] < MATCH_SCORE:
        return None
    if len(hits) > 1 and hits[0][1] - hits[1][1] < CLEAR_MARGIN:
        return None
    return menu[int(hits[0][2])][0]
