"""GitHub building blocks of the service: webhook signature and events, REST client, checkout, PR comment.

Pure library code: nothing here knows about HTTP routes or the job queue, so each piece is
usable (and tested) on its own.
"""
