"""Root conftest: test infrastructure (Kafka, PostgreSQL, topic prefixes) comes from one plugin."""

pytest_plugins = ["devinfra.pytest_plugin"]
