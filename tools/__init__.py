"""Developer tools that are not part of the pipeline (``python -m tools.<name>``)."""
