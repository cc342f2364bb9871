"""Everything that talks outward: Kafka producer, the bridge to functions, the function app.

Imports flow one way: ``connectors`` never imports ``gateway``. See docs/CONTRACTS.md.
"""
