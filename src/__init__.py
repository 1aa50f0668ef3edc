"""coord: an event-sourced coordination log for teams of AI coding agents."""

__version__ = "0.1.0"
