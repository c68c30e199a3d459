"""Errors for bad input. Each message names the file or key and says what to do."""

from __future__ import annotations


class LifelongDepthError(Exception):
    """Base class for every error this package raises about user input or configuration."""


class DataError(LifelongDepthError):
    """A data file or index is missing, unreadable or inconsistent."""


class ConfigError(LifelongDepthError):
    """A configuration value is missing, unknown or inconsistent."""
