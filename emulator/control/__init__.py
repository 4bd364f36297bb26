"""The control plane's rules: progression, outcomes, faults, backend states."""
