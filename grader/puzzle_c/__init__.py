"""Puzzle C: torch.compile of QLoRA training with no graph breaks, judged against the eager model."""
