"""The WebSocket function: connections and streamed chat. Entry point: ``handler.handler``."""
