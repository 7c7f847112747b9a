"""AI providers: the operation catalogue and one client module per provider."""
