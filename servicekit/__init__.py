"""Plumbing every service shares (Postgres set-up, problem details, serving); no service code."""
