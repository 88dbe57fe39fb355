"""Views of the loss landscape: interpolation between checkpoints, 2-D planes, the Hessian's spectrum."""
