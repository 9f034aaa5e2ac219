"""Tests of the session cleanup function."""
