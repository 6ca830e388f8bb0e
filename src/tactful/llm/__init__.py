"""Model port and adapters."""

from tactful.llm.base import Embedder, Generation, Generator, Prompt, Usage

__all__ = ["Embedder", "Generation", "Generator", "Prompt", "Usage"]
