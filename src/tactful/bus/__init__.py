"""Session event notification."""

from tactful.bus.base import Bus, Listener
from tactful.bus.memory import MemoryBus
from tactful.bus.postgres import PostgresBus

__all__ = ["Bus", "Listener", "MemoryBus", "PostgresBus"]
