"""The exit statuses of every ``rmqtui`` command: one table, documented in the README.

=====  =========================================================================
 0     clean stop: every worker drained (``q``, SIGINT, SIGTERM or SIGHUP once);
       ``check`` found no problem; ``load`` had every message acknowledged
 1     runtime failure: the broker could not start or was lost, stopping failed,
       ``load`` lost the broker or not every message was acknowledged,
       the output pipe closed
 2     bad input: the config, a command-line option or the ``--config`` path
 3     no fleet running for this config (``rmqtui ctl``)
 130   forced stop: a second signal, ``q`` twice or Ctrl-C killed the workers
       instead of draining them (``load``: interrupted)
=====  =========================================================================
"""

OK = 0
FAILURE = 1
BAD_INPUT = 2
NO_FLEET = 3
FORCED = 130  # 128 + SIGINT, what shells report for an interrupted command
