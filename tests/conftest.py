"""Shared pytest setup: the broker and PostgreSQL fixtures, and markers that follow what a
test uses (a test that gets a PostgreSQL database is marked `postgres`).

A test that takes a broker fixture is marked `broker` here, so `-m "not broker"` never starts
Mosquitto; `scripts/test --fast` runs what is neither `broker` nor `slow`.
"""

import pytest

pytest_plugins = ["fixtures_broker", "fixtures_postgres", "audio_helpers"]

BROKER_FIXTURES = {"broker", "tls_broker", "cert_broker", "acl_broker"}
BROKER_MODULES = {"test_updates_acl", "test_fleet_hardening_broker"}   # start brokers inline


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if BROKER_FIXTURES & set(getattr(item, "fixturenames", ())) or module in BROKER_MODULES:
            item.add_marker(pytest.mark.broker)
        if "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
