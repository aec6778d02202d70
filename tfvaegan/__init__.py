"""tfvaegan: a faithful, fast TF-VAEGAN (Narayan, Gupta et al., ECCV 2020) for (G)ZSL.

The tree, from the command line down (a module imports only modules below it; docs/architecture.md):
  cli                                the command line: parses arguments, calls a stage
  stages, protocols, artifacts       the stages as functions of paths; paper/val; the files between them
  method/   models losses train synthesize evaluate classifier detector metrics   the paper's figure
  features/ extract demo download dataset embeddings                             images -> features
  data/     load preprocess validate matfile layout                              files -> tensors
  report/   tables plots splits                                                  metrics -> tables
  config, device, errors, fileio     the ground every room stands on
  bench/    the official code transcribed and the timing bench (beside the package, not used by it)
"""
__version__ = "0.1.0"
