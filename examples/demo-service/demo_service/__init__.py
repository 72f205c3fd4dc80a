"""demo-service: sync orders from an upstream API into a local store."""

__version__ = "0.3.1"
