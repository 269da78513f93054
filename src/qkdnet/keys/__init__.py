"""The key management layer: key stores, key supply, the Key Manager's OTP relay, and the
ETSI GS QKD 014 key-delivery logic."""
