"""Serving: one edit, the MLflow pyfunc around it, the command line."""
