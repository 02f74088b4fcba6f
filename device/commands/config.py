"""`edgelens config check FILE` / `edgelens config show`."""

from __future__ import annotations

import json

from device import config as config_module
from device.config import Config


def register(subparsers) -> None:
    parser = subparsers.add_parser("config", help="check or show the configuration",
                                   description="Check a config file, or show the effective "
                                               "config with every key described.")
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a TOML config file",
                           description="Validate FILE: unknown keys, wrong types and "
                                       "out-of-range values are named with what was expected.")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=run_check)
    show = sub.add_parser("show", help="print the effective config as commented TOML",
                          description="Print the effective config (defaults, or --config "
                                      "FILE given before 'config') with every key described.")
    show.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    show.set_defaults(func=run_show)


def run_check(args, cfg: Config) -> int:
    config_module.load(args.file)
    print(f"{args.file}: ok")
    return 0


def run_show(args, cfg: Config) -> int:
    if args.json:
        values = cfg.as_dict()
        for section in config_module.defaults_schema():
            for key in section.keys:
                if key.secret and values[section.name][key.name]:
                    values[section.name][key.name] = config_module.REDACTED
        print(json.dumps(values, indent=2))
    else:
        print(config_module.to_toml(cfg, redact=True))
    return 0
