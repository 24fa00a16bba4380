"""Training side (torch): trainer, data generation, evaluation."""
