"""Evaluation of generative models: classifier-feature (MNIST) or Inception-feature (any dataset) FID/KID with
real-data floors, precision/recall, memorization, classifier Inception Score, per-class histograms, conditional
accuracy, and importance-weighted NLL bounds for VAEs.

Heavy dependencies (torchmetrics, datasets) are imported inside the functions that need them.
"""

FEATURES = ("auto", "classifier", "inception")  # the feature spaces `hf-dgm evaluate --features` offers
