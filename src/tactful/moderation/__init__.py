"""Moderation of customer messages: the port (``moderation.base``) and its adapters (local rules,
the jailbreak check, OpenAI's moderation endpoint). Import the module you need: this package
re-exports nothing, so that the engine imports the port alone."""
