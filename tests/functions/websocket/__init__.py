"""Tests of the WebSocket function: protocol, frames, sender, streaming."""
