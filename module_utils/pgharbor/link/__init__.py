"""The application's link to its database: the connection check, the retry policy, certificate checks."""
