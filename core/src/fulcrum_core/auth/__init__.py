"""Identity: who is calling and what they may do.

    principal.py   Principal: the verified caller (``request.user``)
    claims.py      AccessTokenClaims: the RFC 9068 payload (``request.auth``)
    keys.py        KeyStore: the signing JWK Set in ``state_dir``, shared by all workers, rotatable
    tokens.py      TokenService: issue and verify access tokens (the one signer and verifier)
    middleware.py  auth_middleware(): Bearer authentication plus the route scope check
    basic.py       the token as HTTP Basic ``__token__`` credentials, on routes that allow it (pip)
    guards.py      how routes declare ``public`` or ``scopes``; fail closed when they declare neither

Nothing is imported here, so importing a submodule stays cheap.
"""

__all__: list[str] = []
