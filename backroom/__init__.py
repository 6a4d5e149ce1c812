"""Backroom: See. Sense. Restock. — the domain core (no Kafka in this package).

Run `backroom --help` for the verbs.
"""

__version__ = "0.1.0"
