"""Pieces the trainers share, written once; nothing here imports from the trainers or scripts.

Where a function implements an equation of Schulman et al. 2017 (arXiv 1707.06347) or of the
papers it builds on (GAE: Schulman et al. 2016), its docstring names it; the README's table maps
each equation to its function. The rest is the run scaffold around a training loop (``run``),
checkpoints, tracking, validation and the command line.
"""
