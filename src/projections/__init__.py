"""Folds and the views built from them. Pure folds live in workers.py and liveness.py;
board.py is the thin storage layer that keeps the folded views in SQLite."""
