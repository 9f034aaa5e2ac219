"""Lambda source code. Each function's package keeps this layout, so handlers import
``functions.<name>`` in Lambda exactly as they do in the tests."""
