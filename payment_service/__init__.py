"""The payment service: simulated payments for orders, event sourced, each charged once."""
