"""The console's pages. Each module listed in :data:`PAGE_MODULES` exposes
``router = APIRouter()``; ``app.create_app`` includes every one (a new area: add its
module's name here, one line). Page routes are HTML, not API: declare them with
``include_in_schema=False``.
"""

from __future__ import annotations

PAGE_MODULES: list[str] = [
    "flowchat_console.pages.auth",
    "flowchat_console.pages.inbox",
    "flowchat_console.pages.conversations",
    "flowchat_console.pages.media",
    "flowchat_console.pages.contacts",
    "flowchat_console.pages.campaigns",
    "flowchat_console.pages.catalog",
    "flowchat_console.pages.numbers",
    "flowchat_console.pages.integrations",
    "flowchat_console.pages.team",
    "flowchat_console.pages.operator",
]
