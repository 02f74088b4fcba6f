"""The model lifecycle on the glasses: the store and its pointers, install, health, golden self-tests, hot swap, shadow mode."""
