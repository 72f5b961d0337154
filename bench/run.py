"""rmqtui benchmark entry point: ``.venv/bin/python bench/run.py [--quick] [--only NAME] [--out PATH] [--write-readme]``.

Deliberately empty at import time: with the forkserver and spawn start methods every
worker process re-imports the parent's ``__main__`` module, so the benchmark's own code
lives in bench/runner.py and the modules it imports, only under the ``__main__`` guard.  A heavy
``__main__`` would otherwise add its import time and memory to every worker measured.
"""

if __name__ == "__main__":
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from runner import main

    sys.exit(main())
