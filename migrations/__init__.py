"""Aerich migration histories, one per SQL dialect, generated from the same models."""
