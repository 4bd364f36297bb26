"""Preloaded by the fork server only (`preload.FORK_SERVER_MODULE`): importing it warms the
process. Nothing else imports it."""

from emulator.execution.preload import warm

warm()
