"""Views of the loss landscape that need only forward passes: interpolation between checkpoints, 2-D planes."""
