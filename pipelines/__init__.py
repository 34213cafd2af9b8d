"""Runnable Beam pipelines: `python -m pipelines.<module> --input ... --output ...`."""
