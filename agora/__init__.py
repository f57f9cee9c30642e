"""Agora: a self-hostable software marketplace."""

__version__ = "0.1.0"
