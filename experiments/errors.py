"""Errors a user can fix; the CLI prints them without a traceback."""


class ExperimentError(Exception):
    """Base class: bad study name, bad configuration, missing data."""


class ConfigError(ExperimentError):
    """An unknown key, a wrongly typed value or a value out of range."""


class DatasetError(ExperimentError):
    """A data set that is not known or cannot be loaded."""
