"""The session cleanup function: removes the messages of every removed session, fed by the
sessions table's DynamoDB stream. Entry point: ``handler.handler``."""
