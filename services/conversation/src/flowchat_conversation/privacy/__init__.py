"""Customers' privacy in the conversation service: erasure requests (the API, the
request on ``flowchat.privacy``, the reports) and this service's own erasure."""
