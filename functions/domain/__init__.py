"""What the service is about, free of I/O: the records (sessions, messages, usage) and the
error tree both transports answer with. Standard library and the contract only."""
