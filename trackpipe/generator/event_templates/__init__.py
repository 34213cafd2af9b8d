"""The event templates, one provider per event source, as Faker has one per domain:
server_events (the LMS), browser_events, mobile_events (Segment) and task_events (celery),
on the shared parts of event_parts. A family of event_families.py is the provider method of
the same name; the generator's core picks the family and calls it."""
