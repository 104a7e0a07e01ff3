"""One module per CLI sub-command; each exposes `register(subparsers)` and sets `func` on its parser."""
