"""Ownly's connectors to the outside world: webhook sender, email, Stripe, record stores."""

__all__: list[str] = []
