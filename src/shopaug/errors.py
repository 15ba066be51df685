"""One exception hierarchy, rooted at :class:`ShopAugError`.

Each subclass also derives the builtin a caller would naturally catch
(``SchemaError`` is a ``ValueError``), and every message says how to fix it.
"""

from __future__ import annotations


class ShopAugError(Exception):
    """Base class of every error shopaug raises on purpose."""


class ConfigError(ShopAugError, ValueError):
    """A configuration is invalid (unknown key, wrong type, bad value)."""


class SchemaError(ShopAugError, ValueError):
    """A table lacks a required column or has the wrong shape."""


class DataValidationError(ShopAugError, ValueError):
    """Input data has problems; ``.problems`` lists every one of them."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class LeakageError(ShopAugError, AssertionError):
    """Test information is reachable from the training side of a split."""


class RegistryError(ShopAugError, LookupError):
    """No component is registered under the requested name."""


class ArtifactError(ShopAugError, OSError):
    """An artifact could not be written or read."""


class QualityError(ShopAugError):
    """Synthetic data failed quality checks; ``.checks`` lists the failed ones."""

    def __init__(self, message: str, checks: list | None = None) -> None:
        super().__init__(message)
        self.checks = list(checks or [])
