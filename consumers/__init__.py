"""Consumers: sinks (DuckDB history), the alert tail and the websocket bridge."""
