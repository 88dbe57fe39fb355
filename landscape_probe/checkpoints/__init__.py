"""Checkpoints: load any supported file safely, save our own self-describing ones."""
