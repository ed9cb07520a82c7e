"""Synthetic demo dataset whose labels depend on the report text, plus Dice tables and overlay pictures."""
