"""Curvature: Hessian-vector products and Hessian eigenvalues."""
