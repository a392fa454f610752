"""Shipped sweep YAMLs (``demo.yaml`` first) and the schema that validates them (``schema``)."""
