"""The customer service: customers, their seed data, and the orders_count read model's API."""
