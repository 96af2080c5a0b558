"""The HTTP server and the core API: auth, events, rules."""
