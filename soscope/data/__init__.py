"""Data handling: the graph sample, its files, validation and the DataModule."""
