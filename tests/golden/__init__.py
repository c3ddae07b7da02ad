"""Test data: the seeds' worked examples (seed_examples.py) and PyTorch golden vectors (*.npz)."""
