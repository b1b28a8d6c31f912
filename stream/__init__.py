"""Customer lifecycle engine: order events in, lifecycle transitions out."""

__version__ = "0.1.0"
