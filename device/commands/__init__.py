"""One module per `edgelens` subcommand (discovered by device.cli)."""
