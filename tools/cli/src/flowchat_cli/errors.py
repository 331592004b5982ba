"""What can go wrong, and the exit status each one means (docs/cli.md)."""

from __future__ import annotations

from typing import Any

#: The exit statuses, documented in docs/cli.md and ``flowchat --help``.
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_TIMEOUT = 4

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "done",
    EXIT_REFUSED: "refused by the API (4xx) or the outcome asked for did not happen",
    EXIT_USAGE: "bad arguments or configuration (a missing URL or credential)",
    EXIT_UNREACHABLE: "a service could not be reached or failed (5xx)",
    EXIT_TIMEOUT: "gave up waiting (--wait, --timeout)",
}


class CliError(Exception):
    """An error the CLI reports on one line and turns into an exit status."""

    exit_code = EXIT_REFUSED

    def public(self) -> dict[str, Any]:
        return {"error": {"message": str(self)}}


class ConfigError(CliError):
    exit_code = EXIT_USAGE


class Unreachable(CliError):
    exit_code = EXIT_UNREACHABLE


class TimedOut(CliError):
    exit_code = EXIT_TIMEOUT


class Failed(CliError):
    """The call worked but the outcome is not the one asked for (a message that failed)."""


class ApiError(CliError):
    """An HTTP answer outside 2xx, with the API's machine-readable error."""

    def __init__(self, status: int, body: Any, url: str) -> None:
        self.status = status
        self.body = body
        self.url = url
        self.code, self.message = _code_and_message(body)
        super().__init__(f"{status} {self.code}: {self.message}")
        self.exit_code = EXIT_UNREACHABLE if status >= 500 else EXIT_REFUSED

    def public(self) -> dict[str, Any]:
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}


def _code_and_message(body: Any) -> tuple[str, str]:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = err.get("code", "error")
            message = str(err.get("message") or err.get("title") or "")
            return str(code), message + _details(err.get("details"))
        detail = body.get("detail")
        if detail is not None:
            return "invalid_request", str(detail)
    return "error", str(body)[:300] if body else ""


def _details(details: Any) -> str:
    """Which fields a 422 names (``loc``'s last part: its message), never their values."""
    if not isinstance(details, list):
        return ""
    parts = []
    for item in details[:5]:
        if isinstance(item, dict) and "msg" in item:
            loc = item.get("loc") or []
            where = str(loc[-1]) if loc else (item.get("field") or "")
            parts.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
    return f" ({'; '.join(parts)})" if parts else ""
