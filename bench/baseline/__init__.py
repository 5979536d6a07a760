"""The conventional CRUD + transactional-outbox system, a benchmark fixture (not the product).

`make bench` measures the project beside it (issue 14). It implements the same API and flows
with the same libraries and imports nothing of ours, so it stands for what a competent team
would build instead of event sourcing. Change it only to make it faster.
"""
