"""Training: the two stages as LightningModules, and their schedules."""
