"""Identity: access tokens, authentication middleware, scope guards."""
