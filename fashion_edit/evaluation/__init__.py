"""Evaluation: metrics, baselines, the evaluate stage, ablations and their report."""
