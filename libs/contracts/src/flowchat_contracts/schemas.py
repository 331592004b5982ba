"""JSON Schema export of the contracts, for publishers written in other languages.

``python -m flowchat_contracts.schemas`` rewrites ``libs/contracts/schemas/`` and the
AsyncAPI document beside it (:mod:`flowchat_contracts.asyncapi`); a test fails when the
checked-in files differ from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from flowchat_contracts.command_events import (
    CommandParked,
    CommandRejected,
    MessageStatusChanged,
)
from flowchat_contracts.models import (
    HandoffRequested,
    HandoffResolved,
    InboundMessage,
    InboundMessageV2,
    OutboundCommand,
    SendResult,
    SendResultBatch,
    SendResultBatchV2,
    StatusUpdate,
)
from flowchat_contracts.privacy import PRIVACY_SCHEMAS
from flowchat_contracts.tenant_events import TENANT_EVENT_SCHEMAS
from flowchat_contracts.webhooks import MessageReceived, MessageStatus

#: File stem (``<kind>.v<version>``) → model.
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "inbound_message.v1": InboundMessage,
    "inbound_message.v2": InboundMessageV2,
    "status_update.v1": StatusUpdate,
    "outbound_command.v1": OutboundCommand,
    "send_result.v1": SendResult,
    "send_result_batch.v1": SendResultBatch,
    "send_result_batch.v2": SendResultBatchV2,
    "handoff_requested.v1": HandoffRequested,
    "handoff_resolved.v1": HandoffResolved,
    "webhook.message.received.v1": MessageReceived,
    "webhook.message.status.v1": MessageStatus,
    "message_status_changed.v1": MessageStatusChanged,
    "command_parked.v1": CommandParked,
    "command_rejected.v1": CommandRejected,
}
# the tenant events of issue 22 (their own module, so additions stay additive)
SCHEMA_MODELS.update(TENANT_EVENT_SCHEMAS)
# customers' privacy: erasure requests and reports (issue 28)
SCHEMA_MODELS.update(PRIVACY_SCHEMAS)

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "schemas"


def render_schemas() -> dict[str, str]:
    """File name → JSON text of every contract's schema (as a validator reads input)."""
    out: dict[str, str] = {}
    for stem, model in SCHEMA_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://flowchat.dev/schemas/{stem}.json"
        out[f"{stem}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def export_schemas(directory: Path = DEFAULT_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    from flowchat_contracts.asyncapi import export_asyncapi

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    for p in export_schemas(target):
        print(p)
    # the AsyncAPI document beside the schemas it points at
    print(export_asyncapi(target.parent / "asyncapi.json"))
