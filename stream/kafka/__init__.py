"""Kafka plumbing: client settings, topics, the partitioning rule, batches and the local broker."""
