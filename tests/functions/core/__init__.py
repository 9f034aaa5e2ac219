"""Tests of functions/core: settings, AWS error classification, identity, the deadline, metrics."""
