"""Who is calling: JWTs signed by the user-notification service, verified with its public key."""
