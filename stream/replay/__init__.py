"""The core driven from history: replay to files, on every core, and rebuild of the worker's state."""
