"""A local emulator of IBM Quantum's cloud APIs, running jobs on qiskit-aer."""

__version__ = "0.1.0"
