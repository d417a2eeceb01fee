"""One module per ``locband`` subcommand: ``add_args(parser)`` and ``run(args) -> int``."""
