"""`make bench`: every figure measured in one run, written as a flat JSON object.

Each module in this package defines ``run(quick: bool) -> dict[str, float]``; the names are the
figures documented in the README. Ratios are taken within one run so they compare like with like.
"""
