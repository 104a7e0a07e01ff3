"""The shared base every layer builds on: errors, atomic file output, the vocabulary, the artifact types.

Nothing here imports torch or any other part of edgefold, so `edgefold.compiler`, `edgefold.targets` and the
top-level package can all depend on it without depending on each other.
"""
