"""mailbeacon: self-hosted email tracking that tells the truth about each message."""

__version__ = "0.1.0"
