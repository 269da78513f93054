"""The QKDN management layer: telemetry, alarms, availability, EMS/NMS."""
