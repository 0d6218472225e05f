"""Small helpers shared by the training package and the backend."""
