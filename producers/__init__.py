"""Producers: simulators, CSV replay and the HTTP ingest API, all writing contract topics."""
