"""`python -m signer` is the same as the `csr-signer` console script."""

from signer.cli import main

raise SystemExit(main())
