"""The QKDN control layer: KM-link state, key-aware relay routing by Level-2 controllers
per domain, Level-1 stitching across domains, and protection switching."""
