"""emolib.research."""
