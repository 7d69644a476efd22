"""One module per `dgcap` command: add_parser(subparsers) and run(args) -> exit code."""
