"""Small state machines that show how to replicate your own with drafty."""
