"""The application layer: SAEs that take keys from their KME (ETSI GS QKD 014) and use
them: :mod:`qkdnet.apps.sae_client` is the client, :mod:`qkdnet.apps.sealed_stream` the
AES-256-GCM framing of a sealed file or stream, :mod:`qkdnet.apps.sealed_files` the sender
and receiver that join the two."""
