"""The chat turn behind both transports: the service and its stream, the Bedrock request,
knowledge bases, and how Bedrock's failures become domain errors."""
