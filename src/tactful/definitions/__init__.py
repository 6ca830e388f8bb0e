"""Defining an agent's content: what the SDK and the REST API share, so both store the same."""
