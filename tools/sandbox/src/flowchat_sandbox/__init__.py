"""FlowChat sandbox: a local WhatsApp Cloud API and Twilio Messages API, plus the
customers on the other side, for development, demos and tests."""
