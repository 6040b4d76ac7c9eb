"""Floor 3, the notebooks' side: the table of notebooks, profiles, the session a notebook opens, reports and
their records, the index, the headless runner (`make reproduce`), dry runs, the training plans, studies, plots."""
