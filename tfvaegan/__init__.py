"""tfvaegan: a faithful, fast TF-VAEGAN (Narayan, Gupta et al., ECCV 2020) for (G)ZSL."""
__version__ = "0.1.0"
