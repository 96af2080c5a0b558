"""Durable jobs of every kind: the queue, the workers, and the contract of a kind."""
