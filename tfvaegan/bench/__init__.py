"""Beside the package: the official code transcribed (the tests' oracle and the timing baseline) and
the bench that times ours against it. Nothing here trains or evaluates a user's run."""
