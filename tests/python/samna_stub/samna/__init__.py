"""Stand-in samna package for the samna_setup.py contract test (no board, no samna)."""
