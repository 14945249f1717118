"""Puzzle D (the notebook's E): memory-efficient linear + loss. The contract is in the README."""
