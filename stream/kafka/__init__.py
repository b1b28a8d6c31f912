"""Kafka plumbing: client settings, topics, the partitioning rule and the local broker."""
