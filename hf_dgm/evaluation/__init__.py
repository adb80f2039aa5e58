"""Evaluation of generative models: classifier-feature FID/KID, precision/recall, classifier Inception Score,
per-class histograms, conditional accuracy, and importance-weighted NLL bounds for VAEs.

Heavy dependencies (torchmetrics, datasets) are imported inside the functions that need them.
"""
