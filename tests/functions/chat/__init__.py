"""Tests of functions/chat: chat turns, the Bedrock request, prompt caching, guardrails."""
