"""Projection machinery and the read models fed by the orders exchange."""
