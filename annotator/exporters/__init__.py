"""Dataset exporters, one module per format."""
