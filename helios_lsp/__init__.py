"""Helios: local code completion over LSP and HTTP from one llama.cpp model."""

__version__ = "0.1.0"
