"""The live dashboard: `backroom dashboard` (see dashboard/server.py)."""
