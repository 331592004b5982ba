"""No log call passes ``event=`` (checked on the source tree, no server needed).

structlog's methods take the message as their first positional parameter, named
``event`` (``log.info(event, **kw)``): ``log.info("synced", event="APPROVED")`` raises
``TypeError: meth() got multiple values for argument 'event'`` at run time, in the
middle of a handler (issue 21: every template webhook crashed the sender's
``sender.events`` consumer and ended in ``flowchat.poison``). ``bind(event=...)``
silently loses the value to the next message. Name the field anything else
(``template_event=``, ``status=``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    p
    for pattern in ("libs/*/src/**/*.py", "services/*/src/**/*.py", "tools/*/src/**/*.py")
    for p in ROOT.glob(pattern)
)
#: Methods of structlog's bound loggers and of :mod:`logging`'s loggers that log or bind.
LOG_METHODS = frozenset(
    {
        "debug",
        "info",
        "warning",
        "warn",
        "error",
        "exception",
        "critical",
        "fatal",
        "msg",
        "log",
        "adebug",
        "ainfo",
        "awarning",
        "aerror",
        "aexception",
        "acritical",
        "bind",
        "new",
    }
)


def event_keyword_calls(source: str, filename: str = "<string>") -> list[int]:
    """Lines of ``<something>.<log method>(..., event=...)`` calls in ``source``."""
    lines: list[int] = []
    for node in ast.walk(ast.parse(source, filename)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LOG_METHODS
            and any(k.arg == "event" for k in node.keywords)
        ):
            lines.append(node.lineno)
    return lines


def test_the_scan_sees_the_sources() -> None:
    assert len(SOURCES) > 100
    assert ROOT / "services/sender/src/flowchat_sender/templates.py" in SOURCES


@pytest.mark.parametrize(
    "source",
    [
        'log.info("refreshed", account_id=a, event=event)',
        'self._log.warning("x", event="APPROVED")',
        'structlog.get_logger().bind(event="x")',
        'logging.getLogger(__name__).error("x", event=1)',
    ],
)
def test_the_scan_finds_a_log_call_with_event(source: str) -> None:
    assert event_keyword_calls(source) == [1]


def test_the_scan_leaves_other_calls_alone() -> None:
    source = 'log.info("refreshed", template_event=e)\nemit(event=e)\nlog.info(event="x")\n'
    # the third is a log call with event= too: structlog takes it as the message (legal
    # but confusing); the scan reports it all the same
    assert event_keyword_calls(source) == [3]


def test_no_log_call_passes_event_as_a_keyword() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in SOURCES
        for line in event_keyword_calls(path.read_text(), str(path))
    ]
    assert found == [], "log calls with event= (structlog's message argument): " + ", ".join(found)


# --------------------------------------------------------------------------- personal data

#: Keyword names of log calls that would carry a person's data: phone numbers and
#: WhatsApp ids (``wa_id``, BSUIDs), names, e-mail addresses, message texts and bodies.
#: Log the message or contact id instead, or a hash (a call whose name says so:
#: ``hash_id(...)``, ``sha256(...)``, ``digest(...)``, ``redact(...)``).
PERSONAL_KEYWORDS = frozenset(
    {
        "phone",
        "phone_number",
        "wa_id",
        "to",
        "from_",
        "sender",
        "recipient",
        "customer",
        "customer_id",
        "bsuid",
        # BSUIDs and phone numbers under the names Meta's payloads and the stores use
        # (``user_id`` alone is also a console user's id: not listed)
        "from_user_id",
        "recipient_id",
        "recipient_alias",
        "customer_wa_id",
        "customer_user_id",
        "customer_key",
        "parent_user_id",
        "wa_ids",
        "phones",
        "bsuids",
        "user_name",
        "name",
        "contact_name",
        "profile_name",
        "email",
        "text",
        "body",
        "caption",
        "content",
        "message",
    }
)
_HASHING = ("hash", "sha", "digest", "redact", "mask", "truncate")


def _hashed(value: ast.expr) -> bool:
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return any(h in name.lower() for h in _HASHING)


def personal_keyword_calls(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """(line, keyword) of log calls in ``source`` passing a personal-data keyword
    that is not hashed."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LOG_METHODS
        ):
            for k in node.keywords:
                if k.arg in PERSONAL_KEYWORDS and not _hashed(k.value):
                    found.append((node.lineno, k.arg))
    return found


@pytest.mark.parametrize(
    ("source", "keyword"),
    [
        ('log.info("inbound", wa_id=msg.wa_id)', "wa_id"),
        ('self._log.warning("send failed", to=command.to)', "to"),
        ('log.bind(phone="+2348000000000")', "phone"),
        ('log.info("x", text=message.text)', "text"),
        ('logging.getLogger(__name__).error("x", name=contact.name)', "name"),
        ('log.warning("status", recipient_id=s.recipient_id)', "recipient_id"),
        ('log.info("x", from_user_id=m.from_user_id)', "from_user_id"),
    ],
)
def test_the_scan_finds_personal_data_in_a_log_call(source: str, keyword: str) -> None:
    assert personal_keyword_calls(source) == [(1, keyword)]


def test_the_scan_lets_hashed_and_other_values_through() -> None:
    source = (
        'log.info("x", wa_id=hash_id(w), to=sha256_hex(t))\n'
        'log.info("x", message_id=m, contact_id=c, template=t)\n'
        "send(to=phone, text=body)\n"
    )
    assert personal_keyword_calls(source) == []


def test_no_log_call_passes_personal_data() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} {keyword}="
        for path in SOURCES
        for line, keyword in personal_keyword_calls(path.read_text(), str(path))
    ]
    assert found == [], "log calls with personal data (log an id or a hash): " + ", ".join(found)
