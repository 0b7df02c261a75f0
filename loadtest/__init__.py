"""Load tests (Locust) and the side-by-side benchmark."""
