"""CLI verbs, one module per area; `cli.main` registers each module's `register(app)`.

Keeping areas in their own modules lets the vision, demand and data verbs grow without one
giant main.py; each verb stays thin and calls a plain function of `backroom/`.
"""
