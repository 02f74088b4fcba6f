"""`edgelens calibrate [--json] [--write CONFIG] [--quick]`: measure this device and choose its
operating point (device/benchmarks/calibrate.py has the method)."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

from device import config as config_module
from device.config import Config
from device.errors import ConfigError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="measure this device and choose its operating point",
        description="Profile each stage (detector resolutions, thread counts, recognizer "
                    "width buckets, translator greedy/beam), choose the operating point that "
                    "meets the 20 ms frame and 200 ms new-translation budgets with margin at "
                    "the lowest CPU cost, verify it with the real pipeline, and print the "
                    "tables. --write puts the chosen settings and a [calibration] block into "
                    "a config file, keeping the rest of it. Takes about a minute (--quick: "
                    "about 20 s).")
    parser.add_argument("--json", action="store_true", help="print the whole record as JSON")
    parser.add_argument("--write", metavar="CONFIG",
                        help="write the chosen point into this TOML config (created when "
                             "missing; when --config is not given, it is also the config "
                             "calibrated)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer runs and the moving sequence only (a smoke run)")
    parser.add_argument("--out", default="bench-out/calibrate", metavar="DIR",
                        help="folder for the verification runs' latency samples")
    parser.set_defaults(func=run)


def _base(args, cfg: Config) -> tuple[object, dict]:
    """The config to calibrate and its raw sections (the verification runs start from them):
    --config, else an existing --write file, else the defaults."""
    path = cfg.origin if cfg.origin != "<defaults>" else None
    if path is None and args.write and Path(args.write).is_file():
        path = args.write
        cfg = config_module.load(path)
    if path is None:
        return cfg, {}
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    raw.pop("calibration", None)
    return cfg, raw


def run(args, cfg: Config) -> int:
    # deferred: the parser imports every command; the models and OpenCV load only here
    from device.benchmarks.calibrate import calibrate, format_report
    from device.operating_point import write_operating_point
    cfg, raw = _base(args, cfg)
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    record = calibrate(cfg, quick=args.quick, samples_dir=args.out, base=raw, log=say)
    if args.write:
        write_operating_point(args.write, record["chosen"]["settings"], record["calibration"])
        record["written"] = str(args.write)
    if args.json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        print(format_report(record))
        if args.write:
            print(f"\nwritten to {args.write}")
    return 0
