"""Subcommands of `lama-backend`: one module per subcommand, each exposing `register(subparsers)`."""
