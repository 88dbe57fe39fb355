"""``probe train``: the loop, the optimiser grid, diagnostics, the results file and figures."""
