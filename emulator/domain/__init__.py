"""The domain: job and session states and their rules, snapshots, errors and vocabulary,
as plain data and pure functions. Imports nothing else of the emulator."""
