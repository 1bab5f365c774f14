"""Pieces both PPO trainers share, written once.

Each function names the equation of Schulman et al. 2017 (arXiv 1707.06347) that it implements.
Nothing here imports from the trainers.
"""
