"""Tests of functions/domain: one error model across both transports."""
