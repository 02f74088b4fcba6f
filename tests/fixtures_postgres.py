"""A real PostgreSQL for the fleet tests: one throwaway cluster per test session (initdb +
pg_ctl on a free port, `cloud_sync.fleet.localpostgres`), a fresh database per test, stopped
at the end. Registered from tests/conftest.py.

    def test_x(postgres_url):        # postgresql://edgelens@127.0.0.1:PORT/test_N, empty
    def test_y(fleet_db):            # parametrized: a SQLite path, then a PostgreSQL URL
    def test_z(fleet_store):         # the store opened on fleet_db, closed after the test

Without PostgreSQL the postgres tests skip; with CI=true they fail (a skip would hide that
they did not run).
"""

from __future__ import annotations

import itertools

import pytest

from cloud_sync.fleet.localpostgres import LocalPostgres, find_postgres_bindir
from cloud_sync.fleet.store import open_fleet_store
from fixtures_broker import IN_CI

_names = itertools.count(1)


def missing_postgres() -> None:
    message = ("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb); install the "
               "Debian package 'postgresql' (scripts/setup does)")
    if IN_CI:
        pytest.fail(message + " — CI must run the postgres tests")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server():
    if find_postgres_bindir() is None:
        missing_postgres()
    try:
        import psycopg  # noqa: F401  (installed: the extra "fleet")
    except ImportError:
        if IN_CI:
            pytest.fail("psycopg is not installed; scripts/setup installs edgelens[fleet]")
        pytest.skip("psycopg is not installed (pip install 'edgelens[fleet]')")
    server = LocalPostgres().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    name = f"test_{next(_names)}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fleet_db(request, tmp_path):
    """Where a fleet store lives, once per backend."""
    if request.param == "sqlite":
        return str(tmp_path / "fleet.sqlite")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def fleet_store(fleet_db):
    store = open_fleet_store(fleet_db)
    yield store
    store.close()
