"""GitHub building blocks of the service: webhook signature and events, REST client, checkout, PR comment.

Pure library code: nothing here knows about HTTP routes or the job queue, so each piece is
usable (and tested) on its own. A delivery goes through them in this order:

1. ``signature.verify`` on the raw body, before anything is parsed;
2. ``events.load_payload`` and ``events.parse`` -> an ``Action`` or ``Ignored``; then the pure
   policies ``events.repo_allowed`` and ``events.fork_decision``;
3. in the job: ``checkout.Mirrors.worktree`` at the head sha, then the operation;
4. ``comment.render`` / ``comment.status_line`` posted with ``client.GitHubClient.upsert_comment``
   and ``set_status``; ``client.missed_deliveries`` over ``list_hook_deliveries`` for the sweep.
"""
