"""`edgelens models list|verify`: what is in the model store, and does each artifact behave."""

from __future__ import annotations

import json

from device.config import Config
from device.errors import EdgelensError
from device.modelstore.golden import run_golden
from device.modelstore.store import ModelStore, ModelVersion
from device.runtime import UnsafeBackendError, available_backends


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list and verify the model store",
                                   description="List the model store, or verify artifacts "
                                               "against their manifests.")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="one row per model version",
                             description="One row per model version in the store.")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)
    verify = sub.add_parser("verify", help="sha256, loadable, golden self-test per backend",
                            description="Check each version's files against its manifest "
                                        "(sha256, size), load it, and run its golden "
                                        "self-test on every installed backend it claims.")
    verify.add_argument("name", nargs="?", help="only this model (default: all)")
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(func=run_verify)


def _store(cfg: Config) -> ModelStore:
    return ModelStore.for_config(cfg)


def _row(version: ModelVersion, active: str) -> dict:
    m = version.manifest
    latency = m.get("latency_ms", {})
    return {
        "name": version.name, "version": version.version, "active": version.version == active,
        "task": m["task"], "quantization": m["quantization"],
        "size_bytes": m["artifact"]["size_bytes"], "sha256": m["artifact"]["sha256"],
        "backends": m["compatible_backends"],
        "latency_p50_ms": {b: v.get("p50") for b, v in latency.items() if isinstance(v, dict)},
        "path": str(version.directory),
    }


def run_list(args, cfg: Config) -> int:
    store = _store(cfg)
    rows = [_row(v, store.active_version(v.name)) for v in store.all_versions()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no models in {store.root}")
        return 0
    print(f"{'name':12s} {'version':8s} {'act':3s} {'task':22s} {'quant':12s} {'size':>9s}  "
          f"{'sha256':12s} latency p50 (ms)")
    for r in rows:
        latency = ", ".join(f"{b} {v}" for b, v in r["latency_p50_ms"].items())
        print(f"{r['name']:12s} {r['version']:8s} {'*' if r['active'] else '':3s} "
              f"{r['task']:22s} {r['quantization']:12s} {r['size_bytes'] / 1024:7.0f}KB  "
              f"{r['sha256'][:12]} {latency}")
    return 0


def verify_version(version: ModelVersion) -> dict:
    """Files against manifest, then load + golden self-test on each installed backend."""
    report = {"name": version.name, "version": version.version, "problems": [],
              "backends": {}}
    report["problems"] = version.check_files()
    if report["problems"]:
        return report
    installed = available_backends()
    for backend in version.manifest["compatible_backends"]:
        if backend not in installed:
            report["backends"][backend] = {"skipped": "not installed"}
            continue
        try:
            results = run_golden(version, backend)
        except UnsafeBackendError as exc:     # refused on this CPU: another backend runs it
            report["backends"][backend] = {"skipped": str(exc)}
            continue
        except EdgelensError as exc:
            report["backends"][backend] = {"error": str(exc)}
            report["problems"].append(f"{backend}: {exc}")
            continue
        failed = [r for r in results if not r.passed]
        report["backends"][backend] = {"golden": len(results), "passed": len(results) -
                                       len(failed)}
        for r in failed:
            report["problems"].append(f"{backend}: golden {r.input!r}: expected "
                                      f"{r.expected!r}, got {r.got!r}")
    return report


def run_verify(args, cfg: Config) -> int:
    store = _store(cfg)
    names = [args.name] if args.name else store.names()
    reports = []
    for name in names:
        for version in store.versions(name) or [None]:
            if version is None:
                reports.append({"name": name, "version": None,
                                "problems": [f"no model {name!r} in {store.root}"],
                                "backends": {}})
                continue
            try:
                reports.append(verify_version(store.get(name, version)))
            except EdgelensError as exc:
                reports.append({"name": name, "version": version, "problems": [str(exc)],
                                "backends": {}})
    ok = all(not r["problems"] for r in reports) and bool(reports)
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for r in reports:
            status = "ok" if not r["problems"] else "FAILED"
            backends = ", ".join(f"{b}: {v.get('passed', '-')}/{v.get('golden', '-')}"
                                 if "golden" in v else f"{b}: {next(iter(v.values()))}"
                                 for b, v in r["backends"].items())
            print(f"{r['name']} {r['version']}: {status}  golden {backends}")
            for problem in r["problems"]:
                print(f"  - {problem}")
    return 0 if ok else 1
