"""Offline tooling that produces the bundled model: real-deployment data generation and training.

Nothing here runs inside the Action; it needs llama-cpp-python and the model packages from
requirements-dev.txt.
"""
