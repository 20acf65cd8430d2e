"""hookinspect: capture, inspect, replay, diff and export webhooks."""

__version__ = "0.1.0"
