"""Data sets: built-in, synthetic and user files; probe sets; does a model fit the data."""
