"""The turn pipeline: one module per stage, orchestrated by ``turn.Engine``."""
