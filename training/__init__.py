"""Training and evaluation of LIIF-family models (depends on :mod:`core` only)."""
