"""Benchmarks of the sync path, the update path and fault injection (edgelens-sync bench)."""
