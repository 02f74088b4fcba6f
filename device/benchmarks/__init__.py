"""Benchmarks behind `edgelens bench`: each module has run(config, json_out, quick) -> dict."""
