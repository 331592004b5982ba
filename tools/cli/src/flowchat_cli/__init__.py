"""``flowchat``: one command line for FlowChat's operators and tenants.

It talks to the services' HTTP APIs only (never to a database or the broker), reads its
URLs and credentials from the environment or ``.run/stack.env`` (:mod:`.config`),
prints tables by default and JSON with ``--json`` anywhere on the line (:mod:`.output`),
and exits with the documented codes (:data:`flowchat_cli.errors.EXIT_CODES`).
"""
