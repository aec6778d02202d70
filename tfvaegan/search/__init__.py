"""Honest hyperparameter search: trials scored on the val protocol's validation split only.

`space` (torch-free, read by the workflow before any job) parses the `search` section and lists
the trials; `trials` runs one trial (the val protocol's selection run for one configuration) and
collects them into trials.csv, best.yaml and the search's figure. The best configuration is then
one ordinary `val`-protocol run (`python -m tfvaegan run --config best.yaml`), which reuses the
best trial's selection run and evaluates once on the test set.
"""
