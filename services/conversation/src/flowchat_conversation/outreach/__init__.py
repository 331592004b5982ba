"""Outreach: contacts, marketing opt-outs, campaigns and reminders. Never imports
:mod:`flowchat_conversation.commerce` (``tests/test_architecture.py``)."""
