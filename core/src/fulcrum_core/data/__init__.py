"""Data: database access, the bank data provider, plugin storage, consents."""
