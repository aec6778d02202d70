"""A benchmark's files to tensors: where they lie (layout), MATLAB files (matfile), the rules they
must meet (validate), preprocessing (preprocess) and the loader every stage uses (load).

Importing this package imports nothing else: the workflow reads `layout` without loading torch."""
