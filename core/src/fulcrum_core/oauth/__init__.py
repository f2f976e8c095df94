"""The OAuth 2 authorization server: authlib's server bound to litestar, with our stores.

    adapter.py     litestar request → authlib ``OAuth2Request``; authlib's answer → ``OAuthResponse``
    clients.py     ``OAuthClient`` (authlib's client model) and ``ClientStore`` (the ``oauth_clients`` table)
    plugin_clients.py  ``sync_plugin_clients``: one confidential client per approved plugin
    codes.py       authorization codes: hashed, single-use, 60 seconds
    refresh.py     refresh-token families: rotation and reuse detection
    grants.py      authorization code (+ PKCE S256, required), refresh token, client credentials
    idp.py         the bank's identity provider: its public keys and the assertion ids already used
    jwt_bearer.py  the JWT bearer grant (RFC 7523): the bank's login traded for tokens
    login_session.py  the consent page's login cookie, set from an IdP assertion at /oauth/login
    endpoints.py   revocation (RFC 7009) and introspection (RFC 7662)
    server.py      ``FulcrumAuthorizationServer`` and ``oauth_server(runtime)``
    metadata.py    RFC 8414 metadata
    consent_page.py  the zh-CN / en consent page: the signed-in customer, or the development login

Nothing is imported here, so importing a submodule stays cheap.
"""

__all__: list[str] = []
