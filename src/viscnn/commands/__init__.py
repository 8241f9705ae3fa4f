"""Subcommands of the `viscnn` CLI: each module defines `register(subparsers)`."""
