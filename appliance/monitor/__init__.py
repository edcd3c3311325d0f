"""savd monitor: events, alarms, counters and their exporters (structured log, API, Prometheus).

The monitoring model is the first cut of the I2NSF NSF monitoring model: every event carries the
common metadata (time, source, type, severity); alarms are raised and cleared; counters come from the
enforcers. Producers emit typed notices (events.py) or ready model.Event records (the FlowSpec
compiler's); exporters consume only the bus.

    producers ──notice/Event──► Monitor ──► EventBus (ring buffer) ──► subscribers: log, metrics, API
                                   │
                                   └──► AlarmTable (raised alarms by id)
"""

from appliance.monitor.alarms import Alarm, AlarmTable
from appliance.monitor.bus import EventBus, Record
from appliance.monitor.clock import Clock, ManualClock, SystemClock
from appliance.monitor.monitor import Monitor

__all__ = ["Alarm", "AlarmTable", "Clock", "EventBus", "ManualClock", "Monitor", "Record", "SystemClock"]
