"""Services: job, session and control-plane operations over the store, deciding with the
domain's pure rules. They know the execution layer only through protocols."""
