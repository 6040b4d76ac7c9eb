"""emolib.inference."""
