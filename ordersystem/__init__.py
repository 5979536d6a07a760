"""The composition root: one command line that starts, migrates and supervises every process."""
