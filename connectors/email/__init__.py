"""Email: the outgoing message, its providers, and the events they send back."""

__all__: list[str] = []
