"""Shared pytest setup."""

pytest_plugins = ["fixtures_broker"]
