"""Floor 0, what every other floor stands on: paths and the kinds of run, labels, settings (TrainConfig), the
device and seeding (runtime), the atomic write, reading images, offline assets, the ModelSpec contract,
provenance, quiet libraries and progress bars. Imports nothing else of emolib; no torch at import."""
