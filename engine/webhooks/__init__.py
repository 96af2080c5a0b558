"""Webhooks: signed deliveries of matched events, their health, and their API."""
