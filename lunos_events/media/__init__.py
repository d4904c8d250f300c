"""Pictures in and out of the service: input images checked and decoded, posters made (PyAV)."""
