"""FlowChat sender: ``whatsapp.outbound`` to Meta's Cloud API and Twilio, within limits, once."""

SERVICE = "sender"
