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
