"""`make bench`: every figure measured in one run, written as a flat JSON object.

Each module in this package defines ``run(quick: bool) -> dict[str, float]``; the names are the
figures that docs/benchmarks.md describes (its table of what each measures: `emolib.bench._page.FIGURES`).
Ratios are taken within one run so they compare like with like.

Keys that start with "_" are not figures: a module may return ``"_inputs"`` (the files its figures were
measured on) and ``"_skipped"`` (one line per input it had to leave out); `python -m emolib.bench` files them
under ``"_modules"``, with the machine under ``"_machine"``. A module whose inputs are all missing raises
`Skipped` and the run goes on without it.
"""


class Skipped(Exception):
    """A benchmark's inputs are missing; the message says what, why, and how to get them (one line)."""
