"""The platform's record model and the target stores."""
