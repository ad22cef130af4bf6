"""One router worker process: composition, agents, routing and flushing, users' state, web pages."""
