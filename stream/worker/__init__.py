"""The live worker: the core driven from the orders and ticks topics through faust-streaming,
crash-safe by the commit protocol (docs/architecture.md)."""
