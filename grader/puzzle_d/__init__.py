"""Puzzle D (the notebook's E): memory-efficient linear + loss. See CONTRACT.md for the entry point."""
