"""Training: the trainer and fit(), recipes, typed batches, losses, negative samplers,
mining from a model's ranking, and fixed-index query training."""
