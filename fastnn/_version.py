"""The version of fastnn (pyproject.toml says the same; a packaging test checks)."""
__version__ = "0.1.0"
