"""Offline-first operations: telemetry sync, signed model updates, fleet side."""
