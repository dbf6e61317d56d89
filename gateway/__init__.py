"""Self-hosted carrier gateway: Twilio-compatible REST API and webhooks over SMPP carriers."""

__version__ = "0.1.0"
