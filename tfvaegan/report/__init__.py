"""From metrics.json files to the paper's tables and figures (and the split averages before them)."""
