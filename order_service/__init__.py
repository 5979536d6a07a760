"""The order service: orders as event streams, an HTTP API, and the customer-service client."""
