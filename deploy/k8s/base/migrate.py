"""Apply one service's database migrations and exit (the flowchat-migrate Job).

Runs in the service's own image: ``python /opt/flowchat/migrate.py`` with
FLOWCHAT_SERVICE (tenant, conversation, state-manager, relay, inbox) and DATABASE_URL set. The
services also migrate at start under an advisory lock; the Job makes a release's
schema change visible (and failing) before any new pod starts.
"""

import asyncio
import importlib
import os

from flowchat_platform.db import migrate

service = os.environ["FLOWCHAT_SERVICE"].replace("-", "_")
app = importlib.import_module(f"flowchat_{service}.app")
package = importlib.import_module(f"flowchat_{service}")
schema = getattr(app, "SCHEMA", None) or package.SCHEMA
asyncio.run(migrate(os.environ["DATABASE_URL"], app.MIGRATIONS, schema=schema))
print(f"flowchat_{service}: migrated schema {schema}")
