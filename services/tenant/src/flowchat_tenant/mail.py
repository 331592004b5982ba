"""Adapters of the :class:`~flowchat_tenant.ports.Mailer` seam.

- :class:`Outbox`: keeps every message in memory (the last ``limit``) and, when given
  a path, appends it to a JSON-lines file; development and tests read it back
  (``GET /internal/v1/dev/outbox`` in development, or the file). It never logs a
  message: invitation and reset links are secrets.

Real delivery (SMTP or a provider's API) is another class with the same ``send``.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from pathlib import Path

from flowchat_tenant.ports import Mail


class Outbox:
    def __init__(self, path: Path | None = None, *, limit: int = 1000) -> None:
        self.path = path
        self._messages: deque[Mail] = deque(maxlen=limit)

    async def send(self, mail: Mail) -> None:
        self._messages.append(mail)
        if self.path is not None:
            line = json.dumps(
                {"to": mail.to, "subject": mail.subject, "body": mail.body, "data": dict(mail.data)}
            )
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def messages(self, to: str | None = None) -> list[Mail]:
        return [m for m in self._messages if to is None or m.to == to.lower()]
