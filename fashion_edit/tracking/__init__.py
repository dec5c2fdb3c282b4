"""Tracking: MLflow runs of the stages, the model registry and its promotion gate, the register stage."""
