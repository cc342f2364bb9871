"""The mapping engine: spec models and loader, compiled steps, and the rule runner."""
