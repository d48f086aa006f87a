"""`dbenv serve`: the HTTP face of the operations layer (FastAPI), durable jobs on procrastinate, schedules."""
