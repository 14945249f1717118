"""A property-based pytest grader for the Unsloth puzzles A, C and D."""
