from flowchat_platform.db import run_alembic_env

run_alembic_env()
