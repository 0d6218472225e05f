"""Subcommands of `lama-train`: one module per subcommand, each exposing `register(subparsers)`."""
