"""Kafka plumbing: client settings, topics, the partitioning rule, batches, the consumer and the
local broker."""
