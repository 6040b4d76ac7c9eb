"""emolib.training."""
