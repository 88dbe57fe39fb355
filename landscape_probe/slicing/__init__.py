"""``probe slice``: the model at W + ΔW, the sweep, the predictions, the results file, summary and figures."""
