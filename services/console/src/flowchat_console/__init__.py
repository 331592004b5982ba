"""FlowChat console: the web app of operators and tenants' staff. Server-rendered pages
(Jinja2), htmx for partial updates and server-sent events for live ones; it talks to the
other services only through their HTTP APIs, as the signed-in user."""

SERVICE = "console"

__all__ = ["SERVICE"]
