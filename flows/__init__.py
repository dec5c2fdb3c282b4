"""Prefect flows: scheduled retraining with champion/challenger promotion (``flows.retrain``)
and the ablation study fanned out over worktrees/workers (``flows.ablations``)."""
