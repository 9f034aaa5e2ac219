"""CDKTF constructs of the compute layer: one module per concern, wired by ``stack``."""
