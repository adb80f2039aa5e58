"""Evaluation of generative models: one protocol (evaluate.py) over a registry of feature spaces (features.py:
Inception and any classifier folder) and real images sized to the request (real_data.py): FID/KID with real-data
floors, precision/recall, memorization, the classifier Inception Score, per-class histograms and conditional
accuracy, and importance-weighted NLL bounds for VAEs (likelihood.py). See docs/evaluation.md.

Heavy dependencies (torchmetrics, datasets) are imported inside the functions that need them.
"""
