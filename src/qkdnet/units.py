"""Units of time in seconds, the unit every layer and driver counts time in.

A leaf module like :mod:`qkdnet.errors`: it imports nothing, and every layer may use it
(tests/test_layers.py). Calendar lengths are not physics, so they do not live in the
lowest layer; one home keeps the hour of the fault model, the week of the availability
figures and the day of the link dynamics the same hour, week and day.
"""

HOUR_S = 3600.0
DAY_S = 24 * HOUR_S
WEEK_S = 7 * DAY_S
#: A mean calendar year (365.25 days), the unit of failure rates per link and year.
YEAR_S = 365.25 * DAY_S
