"""The version of vaekit (its own module, so that no module imports it back from the package)."""

__version__ = "0.1.0"
