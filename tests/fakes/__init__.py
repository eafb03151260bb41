"""Local stand-ins for remote services, served on 127.0.0.1 for the tests."""
