"""Durable jobs: the service's database, accepting and running jobs, schedules, and the service processes.

Below both faces: the HTTP face (automation.service) queues and reads jobs here, the typer face
(`dbenv serve`, `dbenv worker`, `dbenv service token`) starts the processes and manages tokens here;
the jobs themselves call automation.operations.
"""
