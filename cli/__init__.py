"""The `backroom` command line (`backroom --help`), outside the Kafka-free core: its verbs start
workers, brokers, producers and the dashboard. `cli/main.py` is the entry point; the verbs live in
`cli/commands/<area>.py`; `cli/demo.py` orchestrates `backroom demo`."""
