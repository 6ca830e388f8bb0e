"""What makes tactful safe to expose: modes, credentials, limits (see docs/security.md)."""
