"""The sampling protocol that collection and the engine share, kept apart so neither imports the other.

The paired model-wise test (compare.py) splits the reference's samples into an anchor set and a held-back
set the size of the candidate's, so the reference stage is queried REFERENCE_FACTOR times as often.
"""

REFERENCE_FACTOR = 2


def reference_samples(samples: int) -> int:
    """How many responses per prompt the reference stage is asked for, when candidates give `samples`."""
    return REFERENCE_FACTOR * samples
