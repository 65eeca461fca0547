"""`python -m bench`: see bench/README.md."""

from bench.harness import main

raise SystemExit(main())
