"""Dataset tools: converters, annotation checks and the demo generator."""
