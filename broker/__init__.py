"""The embedded Apache Kafka broker: `backroom broker start|stop|status`.

Maven resolves the broker jars (pom.xml) once into a cache; `embedded.EmbeddedBroker` formats
and runs a single KRaft node from them.
"""
