"""Session event notification."""

from tactful.bus.base import Bus, Listener
from tactful.bus.memory import MemoryBus

__all__ = ["Bus", "Listener", "MemoryBus"]
