"""trackpipe: Open edX tracking logs to clean, deduplicated warehouse data and research packages."""

__version__ = "0.1.0"
