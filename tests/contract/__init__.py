"""The contract between the synthesized infrastructure and the code: routes, handlers,
environment variables and table key schemas."""
