"""emolib.core."""
