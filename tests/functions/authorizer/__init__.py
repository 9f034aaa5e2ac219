"""Tests of the JWT authorizer against a real OIDC issuer on loopback."""
