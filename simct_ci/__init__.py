"""simct-action: the SimCT consistency test between LLM development stages, run as a GitHub Action."""

__version__ = "0.2.0"
