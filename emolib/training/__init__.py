"""Floor 2, training and evaluation: `loop.fit` over a TrainConfig, its state and resume, DDP, the FaceLoader
and its augmentation, `evaluate`. Built on data, models and core; knows nothing of notebooks or dry runs."""
