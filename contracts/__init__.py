"""Shapes that cross a service boundary (HTTP bodies between services, integration events)."""
