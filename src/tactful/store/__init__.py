"""Persistence: the port and its SQL implementation."""

from tactful.store.base import Store
from tactful.store.sql import SQLStore, open_store, sqlite_url

__all__ = ["SQLStore", "Store", "open_store", "sqlite_url"]
