"""The model zoo: MLP, CNN, transformer and their building blocks."""
