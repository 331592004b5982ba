"""Fixtures of the relay's integration tests (the kit: ``relay_testkit.py``)."""

from relay_testkit import harness, start_relay, tenant_url

__all__ = ["harness", "start_relay", "tenant_url"]
