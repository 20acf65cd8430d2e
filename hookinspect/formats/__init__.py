"""Pure formats: diff, export (curl, HAR, JSON, raw, fixture), redaction, the filter language and its
matcher, samples, targets and shell quoting. They turn deliveries into text and back; no I/O of their own."""
