"""The ``tactful`` command: serve, chat, version."""
