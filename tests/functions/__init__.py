"""Tests of the Lambda functions (Powertools' test settings: tests/conftest.py)."""
