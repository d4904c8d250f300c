"""lunos-events: a self-hosted video generation API with live status streams and signed webhooks."""

__version__ = "0.1.0"
